"""Serving chips ordered by capacity left, then health: O(log n) per new conversation.

Scanning 1,000 chips for every new or orphaned conversation was most of a decision's cost.
Two heaps (every serving chip for consented conversations, active chips only for the rest)
hold `(-left, -health, chip_id)` keys with *lazy invalidation*: a send lowers a chip's key
without rebuilding the heap, and an entry whose key no longer matches the chip's real key is
repaired when it reaches the top. The one rule that keeps this right: whenever a chip's key
may have *risen* (a chip event, a health score, a new day) a fresh entry is pushed, so every
eligible chip always has an entry at least as good as its real key. Repairs happen when the
fleet changes (`push`, `settle`), never during a decision: `best` only reads, so deciding
twice on the same state gives the same chip. Ties on capacity and health go to the smallest
chip id, so the choice does not depend on the order chips were seen in.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

from julia_chips.chip.model import lifecycle as chip_lifecycle
from julia_chips.contract.chip import Status

Key = tuple[int, float, str]  # (-left, -health, chip_id): smallest is best
_COMPACT_SLACK = 64  # stale entries tolerated beyond twice the chip count before a rebuild
_CANDIDATE = -1  # marks a chip's real key in `best`'s frontier (heap positions are >= 0)


class ChipIndex:
    """Owned by `Fleet`: `key_of(chip_id)` is the chip's real key now, or None when it
    cannot take a new conversation (not serving, or no capacity left); `serving` is the
    fleet's live map of active and warming chips."""

    def __init__(self, key_of: Callable[[str], Key | None],
                 serving: Mapping[str, chip_lifecycle.ChipState]) -> None:
        self._key_of = key_of
        self._serving = serving
        self._any: list[Key] = []  # every serving chip: for consented conversations
        self._active: list[Key] = []  # active chips: warming ones never take the others

    def push(self, chip: chip_lifecycle.ChipState) -> None:
        """The chip's key may have changed either way: push its current one."""
        key = self._key_of(chip.chip_id)
        if key is not None:
            heapq.heappush(self._any, key)
            if chip.status is Status.ACTIVE:
                heapq.heappush(self._active, key)
        if len(self._any) > 2 * len(self._serving) + _COMPACT_SLACK:
            self.rebuild()
        else:
            self.settle()

    def rebuild(self) -> None:
        """All keys afresh: too many stale entries."""
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

    def copy(self, other: ChipIndex) -> None:
        """Take `other`'s entries as they are: on a new day, today's keys are the fresh ones."""
        self._any, self._active = list(other._any), list(other._active)

    def settle(self) -> None:
        """Repair the tops after a key fell, so a decision finds a current key on top."""
        self._settle(self._any, consented=True)
        self._settle(self._active, consented=False)

    def lowered(self, consented: bool) -> None:
        """A send of this kind lowered a chip's key: repair the heap such decisions read.
        The other heap may keep a stale top until a send of its own kind (`best` walks past
        it meanwhile), which halves the repairs when both heaps hold the same chips."""
        self._settle(self._any if consented else self._active, consented)

    def _settle(self, heap: list[Key], consented: bool) -> None:
        while heap:
            entry = heap[0]
            key = self._key_for(entry[2], consented)
            if key == entry:
                return
            if key is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, key)  # one sift instead of a pop and a push

    def _key_for(self, chip_id: str, consented: bool) -> Key | None:
        """The chip's real key in the heap for this kind of conversation, None: not in it."""
        key = self._key_of(chip_id)
        if key is None or consented or self._serving[chip_id].status is Status.ACTIVE:
            return key
        return None

    def best(self, consented: bool, taken: Mapping[str, int]) -> str | None:
        """The chip with the best key once `taken` (sends planned but not yet folded) is
        subtracted; None when no eligible chip has capacity left. Reads only."""
        heap = self._any if consented else self._active
        if not heap:
            return None
        top = heap[0]
        if not taken.get(top[2]) and self._key_for(top[2], consented) == top:
            return top[2]  # the usual case: a settled top with nothing planned on it
        return self._walk(heap, consented, taken)

    def _walk(self, heap: list[Key], consented: bool, taken: Mapping[str, int]) -> str | None:
        """Best-first through the heap's tree without popping: entries come out in key order,
        and each chip's real key (less `taken`) joins the frontier the first time one of its
        entries does. Every eligible chip has an entry at least as good as that key, so the
        first real key out is the best chip."""
        frontier: list[tuple[Key, int]] = [(heap[0], 0)]
        seen: set[str] = set()
        while frontier:
            key, at = heapq.heappop(frontier)
            if at == _CANDIDATE:
                return key[2]
            for child in (2 * at + 1, 2 * at + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))
            chip_id = key[2]
            if chip_id in seen:
                continue
            seen.add(chip_id)
            real = self._key_for(chip_id, consented)
            left = 0 if real is None else -real[0] - taken.get(chip_id, 0)
            if real is not None and left > 0:
                heapq.heappush(frontier, ((-left, real[1], chip_id), _CANDIDATE))
        return None
