"""The chips as the balancer sees them: their state, today's sends, and their ranking.

The ranking (`ChipIndex`) is derived from the other two, so they live in one object and
change only through its methods: no chip event or send can leave the ranking behind. Two
rankings are kept: one counting today's sends, one as if none were sent yet, which is what a
decision on a new local day sees before that day's first send is folded. At the first send
of a new day the fresh one becomes today's, so a decision never rebuilds anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from julia_chips.balancer.model.index import ChipIndex, Key
from julia_chips.balancer.model.protection import local_day
from julia_chips.chip.model import lifecycle as chip_lifecycle
from julia_chips.contract.chip import AnyChipEvent, Status

SERVING = frozenset({Status.ACTIVE, Status.WARMING})


class Fleet:
    """Written by `fold` (chip events) and `count_send` (attempts) only."""

    def __init__(self) -> None:
        self._chips: dict[str, chip_lifecycle.ChipState] = {}
        self._serving: dict[str, chip_lifecycle.ChipState] = {}  # active or warming only
        self._day = 0  # local day ordinal `_used` counts for
        self._used: dict[str, int] = {}  # sends attempted on `_day` per chip
        self._today = ChipIndex(self._today_key, self._serving)
        self._fresh = ChipIndex(self._fresh_key, self._serving)

    @property
    def chips(self) -> Mapping[str, chip_lifecycle.ChipState]:
        return self._chips

    @property
    def serving(self) -> Mapping[str, chip_lifecycle.ChipState]:
        return self._serving

    @property
    def day(self) -> int:
        """The local day ordinal today's sends are counted for."""
        return self._day

    def fold(self, event: AnyChipEvent) -> chip_lifecycle.ChipState:
        """Fold a chip event with the chip's own `evolve`; returns the chip's new state."""
        before = self._chips.get(event.chip_id) or chip_lifecycle.ChipState(chip_id=event.chip_id)
        chip = chip_lifecycle.evolve(before, event)
        self._chips[chip.chip_id] = chip
        if chip.status in SERVING:
            self._serving[chip.chip_id] = chip
            self._today.push(chip)
            self._fresh.push(chip)
        elif self._serving.pop(chip.chip_id, None) is not None:
            self._today.settle()
            self._fresh.settle()
        return chip

    def count_send(self, chip_id: str, day: int, consented: bool) -> None:
        """A send attempted on local `day` (`consented`: the kind of conversation it was
        chosen for); one from a day already past counts for nothing."""
        if day > self._day:
            self._day, self._used = day, {}
            self._today.copy(self._fresh)
        if day == self._day:
            self._used[chip_id] = self._used.get(chip_id, 0) + 1
            self._today.lowered(consented)

    def used_today(self, chip_id: str, now: datetime) -> int:
        return self._used.get(chip_id, 0) if local_day(now) == self._day else 0

    def remaining(self, chip_id: str, now: datetime) -> int:
        chip = self._chips.get(chip_id)
        return 0 if chip is None else max(0, chip.daily_cap - self.used_today(chip_id, now))

    def best(self, consented: bool, now: datetime, taken: Mapping[str, int]) -> str | None:
        """The eligible chip with the most capacity left on `now`'s local day once `taken`
        (sends planned in this pass, not yet folded) is subtracted; reads only."""
        index = self._today if local_day(now) == self._day else self._fresh
        return index.best(consented, taken)

    def _today_key(self, chip_id: str) -> Key | None:
        chip = self._serving.get(chip_id)
        if chip is None:
            return None
        left = chip.daily_cap - self._used.get(chip_id, 0)
        return None if left <= 0 else (-left, -health_of(chip), chip_id)

    def _fresh_key(self, chip_id: str) -> Key | None:
        chip = self._serving.get(chip_id)
        if chip is None or chip.daily_cap <= 0:
            return None
        return (-chip.daily_cap, -health_of(chip), chip_id)


def health_of(chip: chip_lifecycle.ChipState) -> float:
    """The health monitor's score (it rides on `TrafficObserved`) when known, else the chip's
    own delivery record today."""
    if chip.health_score is not None:
        return chip.health_score
    day = chip.day
    if day.sent == 0:
        return 1.0
    return max(0.0, min(1.0, (day.delivered - day.failed) / day.sent))


def can_serve(chip: chip_lifecycle.ChipState | None, consented: bool) -> bool:
    """Active chips carry anything; warming chips only real, consented conversations."""
    if chip is None:
        return False
    return chip.status is Status.ACTIVE or (chip.status is Status.WARMING and consented)
