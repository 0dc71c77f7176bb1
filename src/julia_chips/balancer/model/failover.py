"""Failover and pool size: what the balancer does when a chip stops serving.

Failover keeps conversations alive; it never dodges WhatsApp's enforcement. When a chip is
cooled, taken out of service or retired, its conversations move to other chips. When it is
*banned*, only consented conversations move: doctors who were only being prospected from it
are quarantined from prospecting instead of being contacted again from another number.
Opted-out doctors are never handed to anyone.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from datetime import datetime
from typing import Any

import msgspec

from julia_chips.balancer.model.fleet import can_serve, health_of
from julia_chips.balancer.model.protection import DEFAULT_PROTECTION, ProtectionPolicy
from julia_chips.balancer.model.state import BalancerState
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status


class PoolMove(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    promote: bool  # True: PutInService; False: TakeOutOfService
    reason: str


class _Spread:
    """Water-filling: each conversation goes to the chip with the most capacity left after
    the ones already placed, so a failover fills chips evenly instead of piling onto one.
    With equal capacities no chip receives more than ceil(n / chips) conversations."""

    def __init__(self, state: BalancerState, now: datetime, exclude: str) -> None:
        self.left: dict[str, int] = {}
        self._any: list[tuple[int, float, str]] = []  # for consented conversations
        self._active: list[tuple[int, float, str]] = []  # warming chips take consented only
        for chip_id, chip in state.fleet.serving.items():
            left = state.fleet.remaining(chip_id, now)
            if chip_id == exclude or left <= 0:
                continue
            self.left[chip_id] = left
            entry = (-left, -health_of(chip), chip_id)
            self._any.append(entry)
            if chip.status is Status.ACTIVE:
                self._active.append(entry)
        heapq.heapify(self._any)
        heapq.heapify(self._active)

    def take(self, consented: bool) -> str | None:
        heap = self._any if consented else self._active
        while heap:
            neg_left, neg_health, chip_id = heapq.heappop(heap)
            left = self.left[chip_id]
            if -neg_left != left:  # stale: the chip took conversations since this entry
                if left > 0:
                    heapq.heappush(heap, (-left, neg_health, chip_id))
                continue
            self.left[chip_id] = left - 1
            if left > 1:
                heapq.heappush(heap, (-(left - 1), neg_health, chip_id))
            return chip_id
        return None


def plan_failover(state: BalancerState, chip_id: str, now: datetime, cause_id: str,
                  policy: ProtectionPolicy = DEFAULT_PROTECTION) -> list[rt.AnyRouteEvent]:
    """Reassign or quarantine every conversation the chip can no longer carry.

    :param cause_id: id of the chip event that caused it; event ids derive from it, so a
        new leader redoing the failover writes the same events (deduplicated).
    """
    chip = state.fleet.chips.get(chip_id)
    status = chip.status.value if chip and chip.status else "unknown"
    banned = chip is not None and chip.status is Status.BANNED
    spread = _Spread(state, now, exclude=chip_id)
    events: list[rt.AnyRouteEvent] = []
    for doctor_id in sorted(state.doctors.held_by(chip_id)):
        doctor = state.doctors.get(doctor_id)
        if doctor.opted_out or can_serve(chip, doctor.consented):
            continue
        common: dict[str, Any] = {"event_id": f"{cause_id}:{doctor_id}", "doctor_id": doctor_id,
                  "command_id": cause_id, "occurred_at": now}
        if banned and not doctor.consented:
            events.append(rt.DoctorQuarantined(
                chip_id=chip_id, until=now + policy.quarantine, **common,
                reason=f"chip {chip_id} was banned while only prospecting this doctor"))
            continue
        target = spread.take(doctor.consented)
        if target is not None:  # else orphaned: placed on its next message or backlog pass
            events.append(rt.ConversationReassigned(
                from_chip_id=chip_id, chip_id=target, consented=doctor.consented,
                reason=f"chip {chip_id} can no longer serve ({status})", **common))
    return events


def plan_pool(state: BalancerState, max_active: int,
              pending: Collection[str] = ()) -> list[PoolMove]:
    """Promote the healthiest `ready` chips while the pool is short, take the least healthy
    out while it is over; `pending`: chips with a move already asked for."""
    chips = state.fleet.chips.values()
    active = [c for c in chips if c.status is Status.ACTIVE]
    ready = [c for c in chips if c.status is Status.READY]
    promoting = sum(1 for c in ready if c.chip_id in pending)
    demoting = sum(1 for c in active if c.chip_id in pending)
    size = len(active) + promoting - demoting
    if size < max_active:
        candidates = sorted((c for c in ready if c.chip_id not in pending),
                            key=lambda c: (-health_of(c), c.chip_id))
        return [PoolMove(chip_id=c.chip_id, promote=True,
                         reason=f"pool has {size} active chips of {max_active}")
                for c in candidates[:max_active - size]]
    if size > max_active:
        candidates = sorted((c for c in active if c.chip_id not in pending),
                            key=lambda c: (health_of(c), c.chip_id))
        return [PoolMove(chip_id=c.chip_id, promote=False,
                         reason=f"pool has {size} active chips, limit {max_active}")
                for c in candidates[:size - max_active]]
    return []


def orphaned_chips(state: BalancerState) -> list[str]:
    """Chips that hold conversations they can no longer serve (swept after a takeover)."""
    chips = state.fleet.chips
    return [chip_id for chip_id in state.doctors.holding_chips()
            if chip_id in chips and chips[chip_id].status is not Status.ACTIVE]
