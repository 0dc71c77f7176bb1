"""The doctors the balancer knows, and per chip the conversations it holds.

Failover asks "whom does this chip hold?" of one chip, not of 100,000 doctors, so that
answer is kept beside the doctors and changes only with them: `put` is the one write.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Set
from datetime import datetime

import msgspec


class Doctor(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str | None = None  # the chip holding the conversation; None: not assigned
    consented: bool = False  # wrote to us or opted in: may move to another chip on a ban
    opted_out: bool = False
    quarantined_until: datetime | None = None
    prospected_at: tuple[datetime, ...] = ()  # prospecting sends in the last week


NO_DOCTOR = Doctor()  # a doctor never heard of: not assigned, not consented
_NOBODY: frozenset[str] = frozenset()


class Doctors:
    def __init__(self) -> None:
        self._doctors: dict[str, Doctor] = {}
        self._held: dict[str, set[str]] = {}  # chip_id -> doctors it holds (never empty)

    def get(self, doctor_id: str) -> Doctor:
        return self._doctors.get(doctor_id, NO_DOCTOR)

    def put(self, doctor_id: str, doctor: Doctor) -> None:
        """Store the doctor's new state; a changed chip moves the conversation between
        holders."""
        before = self._doctors.get(doctor_id, NO_DOCTOR).chip_id
        self._doctors[doctor_id] = doctor
        if before == doctor.chip_id:
            return
        if before is not None:
            held = self._held[before]
            held.discard(doctor_id)
            if not held:
                del self._held[before]
        if doctor.chip_id is not None:
            self._held.setdefault(doctor.chip_id, set()).add(doctor_id)

    def held_by(self, chip_id: str) -> Set[str]:
        return self._held.get(chip_id, _NOBODY)

    def holding_chips(self) -> Iterator[str]:
        """Chips holding at least one conversation."""
        return iter(self._held)

    def items(self) -> ItemsView[str, Doctor]:
        """Every doctor known, by id (a read model is checked against this)."""
        return self._doctors.items()

    def __len__(self) -> int:
        return len(self._doctors)
