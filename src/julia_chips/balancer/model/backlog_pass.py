"""A backlog pass: serve what fits now, oldest first; nothing is dropped for lack of capacity.

A pass walks the backlog oldest first and serves what fits now (a new day, a promoted or
resumed chip); a doctor whose oldest entry must still wait holds their later entries too, so
a doctor never receives messages out of order. Prospecting still obeys quiet hours, the
brake and the weekly cap when it finally goes out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from julia_chips.balancer.model.decide import (
    ERASED,
    Event,
    Wait,
    attempted,
    place,
    placement_events,
    prospecting_block,
    queued_key,
)
from julia_chips.balancer.model.protection import DEFAULT_PROTECTION, ProtectionPolicy
from julia_chips.balancer.model.state import BalancerState
from julia_chips.contract import route as rt
from julia_chips.contract.route import RefusalReason


class Serving(msgspec.Struct, frozen=True, kw_only=True):
    """One entry this pass serves or cancels, and the events that does, in append order."""

    entry: rt.RequestQueued
    events: list[Event]


def serve_backlog(state: BalancerState, now: datetime, cause_id: str,
                  policy: ProtectionPolicy = DEFAULT_PROTECTION, limit: int = 1000
                  ) -> list[Serving]:
    """The entries served (or cancelled) now, up to `limit`, oldest first; at most one entry
    per doctor per pass, so each doctor's weekly cap and chip are judged on up-to-date state
    next pass. Reads `state` only: the caller folds each `Serving`'s events."""
    taken: dict[str, int] = {}
    seen: set[str] = set()
    served: list[Serving] = []
    for entry in list(state.backlog.values()):
        if len(seen) >= limit:
            break
        if entry.doctor_id in seen:
            continue
        seen.add(entry.doctor_id)
        events = _serve(state, entry, now, cause_id, policy, taken)
        if events:
            served.append(Serving(entry=entry, events=events))
    return served


def _serve(state: BalancerState, entry: rt.RequestQueued, now: datetime, cause_id: str,
           policy: ProtectionPolicy, taken: dict[str, int]) -> list[Event]:
    doctor = state.doctors.get(entry.doctor_id)
    common: dict[str, Any] = {"doctor_id": entry.doctor_id, "command_id": cause_id,
                              "occurred_at": now, "request_id": entry.request_id}
    consented = entry.consented or doctor.consented
    key = queued_key(state, entry)
    if key is None or entry.erased:  # the doctor was erased: the key that opened it is gone
        return [rt.RequestCancelled(event_id=f"{entry.request_id}:cancelled",
                                    reason=ERASED, **common)]
    if doctor.opted_out or state.phones.opted_out(key):
        return [rt.RequestCancelled(event_id=f"{entry.request_id}:cancelled",
                                    reason="doctor opted out", **common)]
    if entry.kind == "prospecting":
        blocked = prospecting_block(state, doctor, consented, now, policy)
        if blocked is not None and blocked.reason is RefusalReason.QUARANTINED:
            return [rt.RequestCancelled(event_id=f"{entry.request_id}:cancelled",
                                        reason=str(blocked), **common)]
        if blocked is not None:
            return []  # quiet hours, brake or weekly cap: wait
    placement = place(state, doctor, consented, now, taken)
    if isinstance(placement, Wait):
        return []
    taken[placement.chip_id] = taken.get(placement.chip_id, 0) + 1
    return [*placement_events(entry.doctor_id, entry.request_id, placement, consented, now, key),
            attempted(entry.doctor_id, entry.request_id, placement.chip_id, entry.kind,
                      consented, now),
            rt.RequestServed(event_id=f"{entry.request_id}:served", chip_id=placement.chip_id,
                             **common)]
