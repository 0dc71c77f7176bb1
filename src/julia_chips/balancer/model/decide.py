"""The balancer's decisions: which chip carries a message to a doctor, or why none may.

Sticky first: a doctor stays with their chip while it can serve, because a new number in
the middle of a conversation confuses doctors and looks like spam to WhatsApp. When the
sticky chip is only out of capacity for today the message waits in the backlog rather than
moving. New and orphaned conversations go to the eligible chip with the most capacity
left today, health breaking ties. `decide` is pure; it reads `BalancerState`, never writes
(a property test holds it to that).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from julia_chips.balancer.model.doctors import Doctor
from julia_chips.balancer.model.fleet import can_serve
from julia_chips.balancer.model.protection import (
    DEFAULT_PROTECTION,
    ProtectionPolicy,
    is_opt_out,
    prospecting_in_week,
    within_prospecting_hours,
)
from julia_chips.balancer.model.state import BalancerState
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.route import RefusalReason

Event = rt.AnyRouteEvent | msg.AnyMessageEvent


class RouteRefused(Exception):
    """A request the balancer will not carry out; `reason` is the code callers act on, the
    message the sentence a person reads."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    sticky: bool = False  # the doctor's own chip: nothing to record
    from_chip_id: str | None = None  # set when the old chip can no longer serve
    why_moved: str = ""


class Wait(msgspec.Struct, frozen=True, kw_only=True):
    """No chip may take the message now: it waits in the backlog, and `reason` says why."""

    reason: str


def decide(state: BalancerState, command: rt.AnyRouteCommand, now: datetime,
           policy: ProtectionPolicy = DEFAULT_PROTECTION) -> list[Event]:
    """The route events `command` causes, and for a send that goes out now its
    `SendAttempted`, in the order they are appended; raises RouteRefused with the reason.
    Never does I/O, never changes `state`: the caller folds the events with `evolve`."""
    match command:
        case rt.SendRequest():
            return _send(state, command, state.doctors.get(command.doctor_id), now, policy)
        case rt.OptOut():
            return _opt_out(state, command, [command.doctor_id], None, command.source, now)
        case rt.OptIn():
            return _opt_in(state, command, now)
        case rt.InboundMessage():
            return _inbound(state, command, now)
        case rt.ForgetDoctor():
            return _forget(state, command, now)
    raise TypeError(f"unknown request {type(command).__name__}")


ERASED = "doctor erased"  # the cancel reason of an entry whose phone and text are gone


def _forget(state: BalancerState, command: rt.ForgetDoctor, now: datetime) -> list[Event]:
    """`DoctorErased`, then the doctor's backlog cancelled: it holds their phone and texts.
    The rest of what the balancer knows of them (chip, consent, opt-out) is no personal data
    and stays, so an opted-out doctor stays out."""
    common = _common(command, command.doctor_id, now)
    return [rt.DoctorErased(event_id=f"{command.command_id}:erased", **common),
            *(rt.RequestCancelled(event_id=f"{entry.request_id}:cancelled",
                                  request_id=entry.request_id, reason=ERASED, **common)
              for entry in state.backlog.values() if entry.doctor_id == command.doctor_id)]


def stranger_id(key: str) -> str:
    """The doctor id of a phone no send ever went to: its opt-out and reply need a subject."""
    return f"phone-{key}"


def _inbound(state: BalancerState, command: rt.InboundMessage, now: datetime) -> list[Event]:
    """The doctors behind the message: the one named, and every doctor a send to its phone
    was assigned to (a phone never sent to stands for a doctor of its own)."""
    key = state.phones.key(command.doctor_phone) if command.doctor_phone else None
    linked = sorted(state.phones.doctors(key)) if key else []
    named = [command.doctor_id] if command.doctor_id else []
    doctor_ids = list(dict.fromkeys(named + linked)) or [stranger_id(key or "")]
    if is_opt_out(command.text):
        return _opt_out(state, command, doctor_ids, key, "keyword", now)
    return [rt.DoctorReplied(event_id=f"{command.command_id}:{n}", chip_id=command.chip_id,
                             **_common(command, doctor_id, now))
            for n, doctor_id in enumerate(d for d in doctor_ids
                                          if not state.doctors.get(d).consented)]


def _opt_in(state: BalancerState, command: rt.OptIn, now: datetime) -> list[Event]:
    key = state.phones.key(command.doctor_phone) if command.doctor_phone else None
    doctor = state.doctors.get(command.doctor_id)
    if not doctor.opted_out and doctor.consented and not (key and state.phones.opted_out(key)):
        return []
    return [rt.DoctorOptedIn(event_id=f"{command.command_id}:0", source=command.source,
                             phone_key=key, **_common(command, command.doctor_id, now))]


def _common(command: rt.RouteCommand, doctor_id: str, now: datetime) -> dict[str, Any]:
    return {"doctor_id": doctor_id, "command_id": command.command_id, "occurred_at": now}


def _opt_out(state: BalancerState, command: rt.RouteCommand, doctor_ids: list[str],
             key: str | None, source: str, now: datetime) -> list[Event]:
    """Fleet-wide and at once: whatever still waits in the backlog for the doctors, or for
    the phone under any doctor id, is cancelled. The first opt-out carries the phone's key."""
    phone_new = key is not None and not state.phones.opted_out(key)
    out = [d for d in doctor_ids if not state.doctors.get(d).opted_out]
    if phone_new and not out:
        out = doctor_ids[:1]  # the doctor is out already; the phone is not yet
    n = itertools.count()
    events: list[Event] = []
    for doctor_id in out:
        events.append(rt.DoctorOptedOut(
            event_id=f"{command.command_id}:{next(n)}", source=source,
            phone_key=key if phone_new and not events else None,
            **_common(command, doctor_id, now)))
    if not events:
        return []
    stopped = set(out)
    for entry in state.backlog.values():
        if entry.doctor_id in stopped or (phone_new and queued_key(state, entry) == key):
            events.append(rt.RequestCancelled(
                event_id=f"{command.command_id}:{next(n)}", request_id=entry.request_id,
                reason="doctor opted out", **_common(command, entry.doctor_id, now)))
    return events


def _send(state: BalancerState, request: rt.SendRequest, doctor: Doctor, now: datetime,
          policy: ProtectionPolicy) -> list[Event]:
    if doctor.opted_out:
        raise RouteRefused(RefusalReason.OPTED_OUT,
                           f"doctor {request.doctor_id} opted out (fleet-wide); "
                           "nothing is sent until they opt back in")
    key = state.phones.key(request.doctor_phone)
    if state.phones.opted_out(key):
        raise RouteRefused(RefusalReason.OPTED_OUT,
                           "this phone opted out (fleet-wide, under any doctor id); "
                           "nothing is sent to it until it opts back in")
    consented = request.consented or doctor.consented
    if request.kind == "prospecting":
        blocked = prospecting_block(state, doctor, consented, now, policy)
        if blocked is not None:
            raise blocked
    if state.backlog.waiting(request.doctor_id):
        return [_queued(request, now, "earlier messages to this doctor are still waiting", key)]
    placement = place(state, doctor, consented, now)
    if isinstance(placement, Wait):
        return [_queued(request, now, placement.reason, key)]
    return [*placement_events(request.doctor_id, request.command_id, placement, consented, now,
                              key),
            attempted(request.doctor_id, request.command_id, placement.chip_id, request.kind,
                      consented, now)]


def prospecting_block(state: BalancerState, doctor: Doctor, consented: bool, now: datetime,
                      policy: ProtectionPolicy) -> RouteRefused | None:
    """The refusal, when prospecting this doctor now would break a protection rule."""
    if state.brake_engaged(now):
        return RouteRefused(RefusalReason.BRAKE_ENGAGED,
                            f"fleet brake engaged until {state.brake_until:%Y-%m-%d %H:%M}"
                            " UTC after a burst of bans: no prospecting")
    if not within_prospecting_hours(now, policy):
        return RouteRefused(RefusalReason.QUIET_HOURS,
                            f"quiet hours: prospecting only {policy.quiet_end:%H:%M}-"
                            f"{policy.quiet_start:%H:%M} America/Sao_Paulo, Monday to Saturday")
    if not consented and doctor.quarantined_until is not None and now < doctor.quarantined_until:
        return RouteRefused(RefusalReason.QUARANTINED,
                            f"doctor quarantined from prospecting until "
                            f"{doctor.quarantined_until:%Y-%m-%d} after their chip was banned")
    if prospecting_in_week(doctor.prospected_at, now) >= policy.weekly_prospecting_cap:
        return RouteRefused(RefusalReason.FREQUENCY_CAP,
                            f"frequency cap: {policy.weekly_prospecting_cap} prospecting "
                            "messages per doctor per 7 days already sent")
    return None


def place(state: BalancerState, doctor: Doctor, consented: bool, now: datetime,
          taken: Mapping[str, int] | None = None) -> Placement | Wait:
    """The chip for the doctor's next message, or why it must wait (`taken`: sends already
    planned in this pass, not yet in the state)."""
    taken = taken or {}
    current = doctor.chip_id
    why_moved = ""
    if current is not None:
        chip = state.fleet.chips.get(current)
        if can_serve(chip, consented):
            if state.fleet.remaining(current, now) - taken.get(current, 0) > 0:
                return Placement(chip_id=current, sticky=True)
            cap = chip.daily_cap if chip else 0
            return Wait(reason=f"chip {current} reached its daily cap ({cap}); "
                               "the conversation stays on it")
        status = chip.status.value if chip and chip.status else "unknown"
        why_moved = f"chip {current} can no longer serve ({status})"
    best = choose_chip(state, consented, now, taken)
    if best is None:
        kind = "consented" if consented else "non-consented"
        return Wait(reason=f"no eligible chip has capacity left today for a {kind} conversation")
    return Placement(chip_id=best, from_chip_id=current, why_moved=why_moved)


def choose_chip(state: BalancerState, consented: bool, now: datetime,
                taken: Mapping[str, int]) -> str | None:
    """The eligible chip with the most capacity left today; health breaks ties, then the
    smallest chip id.

    The hot path of every new conversation, so it asks the fleet's heap index (O(log n))
    rather than scanning the chips; it reads the index and never repairs it."""
    return state.fleet.best(consented, now, taken)


def placement_events(doctor_id: str, command_id: str, placement: Placement, consented: bool,
                     now: datetime, phone_key: str | None = None) -> list[Event]:
    """What a placement records; a new conversation remembers the phone's key (`Phones`)."""
    common: dict[str, Any] = {"doctor_id": doctor_id, "command_id": command_id, "occurred_at": now,
              "chip_id": placement.chip_id, "consented": consented}
    if placement.sticky:
        return []
    if placement.from_chip_id is not None:
        return [rt.ConversationReassigned(event_id=f"{command_id}:moved",
                                          from_chip_id=placement.from_chip_id,
                                          reason=placement.why_moved, **common)]
    return [rt.ConversationAssigned(event_id=f"{command_id}:assigned", phone_key=phone_key,
                                    **common)]


def attempted(doctor_id: str, attempt_id: str, chip_id: str, kind: str, consented: bool,
              now: datetime) -> msg.SendAttempted:
    return msg.SendAttempted(event_id=f"{attempt_id}:attempted", chip_id=chip_id,
                             attempt_id=attempt_id, doctor_id=doctor_id, kind=kind,
                             consented=consented, occurred_at=now)


def queued_key(state: BalancerState, entry: rt.RequestQueued) -> str | None:
    """A backlog entry's phone key: stored since v2, taken from the phone in v1 history;
    None once the entry is erased."""
    if entry.phone_key is not None:
        return entry.phone_key
    return state.phones.key(entry.doctor_phone) if entry.doctor_phone is not None else None


def _queued(request: rt.SendRequest, now: datetime, reason: str, key: str
            ) -> rt.RequestQueued:
    return rt.RequestQueued(event_id=f"{request.command_id}:queued", request_id=request.command_id,
                            doctor_phone=request.doctor_phone, text=request.text, phone_key=key,
                            kind=request.kind, consented=request.consented, reason=reason,
                            doctor_id=request.doctor_id, command_id=request.command_id,
                            occurred_at=now)
