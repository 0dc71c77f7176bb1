"""Serving chips ordered by capacity left today, then health: O(log n) per new conversation.

Scanning 1,000 chips for every new or orphaned conversation was most of a decision's cost.
Two heaps (every serving chip for consented conversations, active chips only for the rest)
hold `(-left, -health, chip_id)` keys with *lazy invalidation*: a send lowers a chip's key
without touching the heap, and an entry whose key no longer matches the chip's real key is
repaired when it reaches the top. The one rule that keeps this right: whenever a chip's key
may have *risen* (a chip event, a health score, a new day) a fresh entry is pushed, so every
eligible chip always has an entry at least as good as its real key, and the first entry at
the top that matches its chip is the best chip. Ties on capacity and health go to the
smallest chip id, so the choice does not depend on the order chips were seen in.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

from julia_chips.chip.model import lifecycle as chip_lifecycle
from julia_chips.contract.chip import Status

Key = tuple[int, float, str]  # (-left, -health, chip_id): smallest is best
_COMPACT_SLACK = 64  # stale entries tolerated beyond twice the chip count before a rebuild


class ChipIndex:
    """Owned by `BalancerState`: `key_of(chip_id)` is the chip's real key now, or None when
    it cannot take a new conversation (not serving, or no capacity left); `serving` is the
    state's live map of active and warming chips."""

    def __init__(self, key_of: Callable[[str], Key | None],
                 serving: Mapping[str, chip_lifecycle.ChipState]) -> None:
        self._key_of = key_of
        self._serving = serving
        self._any: list[Key] = []  # every serving chip: for consented conversations
        self._active: list[Key] = []  # active chips: warming ones never take the others
        self.view: tuple[int, int] | None = None  # (decision day, state day) keys count for

    def touch(self, chip: chip_lifecycle.ChipState) -> None:
        """The chip's key may have changed either way: push its current one."""
        if self.view is None:
            return  # built on first use
        key = self._key_of(chip.chip_id)
        if key is None:
            return  # its old entries are dropped when they surface
        heapq.heappush(self._any, key)
        if chip.status is Status.ACTIVE:
            heapq.heappush(self._active, key)
        if len(self._any) > 2 * len(self._serving) + _COMPACT_SLACK:
            self.rebuild(self.view)

    def rebuild(self, view: tuple[int, int] | None) -> None:
        """All keys afresh: on first use, a new local day, or too many stale entries."""
        self.view = view
        self._any, self._active = [], []
        for chip_id, chip in self._serving.items():
            key = self._key_of(chip_id)
            if key is None:
                continue
            self._any.append(key)
            if chip.status is Status.ACTIVE:
                self._active.append(key)
        heapq.heapify(self._any)
        heapq.heapify(self._active)

    def best(self, consented: bool, taken: Mapping[str, int]) -> str | None:
        """The chip with the best key once `taken` (sends planned but not yet folded) is
        subtracted; None when no eligible chip has capacity left."""
        heap = self._any if consented else self._active
        if not taken:
            key = self._top(heap, consented)
            return None if key is None else key[2]
        held: list[Key] = []
        best: Key | None = None
        while True:
            key = self._top(heap, consented)
            # Heap keys ignore `taken`, so they are at least as good as the adjusted ones:
            # once the top cannot beat the best adjusted key, nothing left can.
            if key is None or (best is not None and key >= best):
                break
            held.append(heapq.heappop(heap))
            left = -key[0] - taken.get(key[2], 0)
            if left > 0 and (best is None or (-left, *key[1:]) < best):
                best = (-left, key[1], key[2])
        for key in held:
            heapq.heappush(heap, key)
        return None if best is None else best[2]

    def _top(self, heap: list[Key], consented: bool) -> Key | None:
        """The first entry that matches its chip's real key, repairing stale ones on the way."""
        while heap:
            entry = heap[0]
            key = self._key_of(entry[2])
            if key == entry:
                return entry
            heapq.heappop(heap)
            if key is not None and (consented or self._serving[entry[2]].status is Status.ACTIVE):
                heapq.heappush(heap, key)
        return None
