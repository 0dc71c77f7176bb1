"""What the balancer knows: the fleet, the doctors and their phones, the backlog, recent
attempts, the brake.

Rebuilt by folding ROUTE_EVENTS, MSG_EVENTS, CHIP_EVENTS and the fleet brake. With 100,000
doctors a copy-on-write state would copy that many entries per decision, so `BalancerState`
is owned by one balancer and `evolve` updates it in place; `decide` only ever reads it.
What is derived (a chip ranking, a chip's conversations, a doctor's place in the backlog)
is kept by the part that owns its source (`Fleet`, `Doctors`, `Backlog`), so `evolve`
states what happened and those parts keep themselves consistent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from julia_chips.balancer.model.backlog import Backlog
from julia_chips.balancer.model.doctors import Doctors
from julia_chips.balancer.model.fleet import Fleet
from julia_chips.balancer.model.phones import Phones
from julia_chips.balancer.model.protection import local_day
from julia_chips.chip.model import lifecycle as chip_lifecycle
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.fleet import AnyFleetEvent, FleetBrakeEngaged
from julia_chips.contract.route import ReplyStatus

WEEK = timedelta(days=7)
ATTEMPT_MEMORY_DAYS = 8  # local days of attempts kept: what a rebuild replays (ledger horizon)


class Attempt(msgspec.Struct, kw_only=True):
    chip_id: str
    doctor_id: str
    outcome: ReplyStatus | None = None  # dispatched, failed, unknown; None: in flight/crashed
    day: int = 0  # local day ordinal of the attempt, for forgetting it after ATTEMPT_MEMORY_DAYS


class BalancerState:
    """Mutable by design (see the module docstring); only `evolve` and `apply_*` write."""

    def __init__(self, phone_secret: bytes = b"") -> None:
        """:param phone_secret: the key of the phones' hash (`Phones`)."""
        self.fleet = Fleet()
        self.doctors = Doctors()
        self.phones = Phones(phone_secret)
        self.backlog = Backlog()
        self.attempts: dict[str, Attempt] = {}  # by attempt id (= request command id), oldest
        # first; pruned to ATTEMPT_MEMORY_DAYS at each new local day (see `_forget_attempts`)
        self.brake_until: datetime | None = None

    def brake_engaged(self, now: datetime) -> bool:
        return self.brake_until is not None and now < self.brake_until


def evolve(state: BalancerState, event: rt.AnyRouteEvent | msg.AnyMessageEvent) -> BalancerState:
    """Apply a route or ledger event; total over both unions."""
    if isinstance(event, msg.MessageEvent):
        return _evolve_ledger(state, event)
    s = msgspec.structs.replace
    doctor = state.doctors.get(event.doctor_id)
    match event:
        case rt.ConversationAssigned() | rt.ConversationReassigned():
            doctor = s(doctor, chip_id=event.chip_id, consented=doctor.consented or event.consented)
            if isinstance(event, rt.ConversationAssigned) and event.phone_key:
                state.phones.link(event.phone_key, event.doctor_id)
        case rt.DoctorOptedOut():
            doctor = s(doctor, opted_out=True)
            if event.phone_key:
                state.phones.opt_out(event.phone_key)
        case rt.DoctorOptedIn():
            doctor = s(doctor, opted_out=False, consented=True)
            if event.phone_key:
                state.phones.opt_in(event.phone_key)
        case rt.DoctorReplied():
            doctor = s(doctor, consented=True)
        case rt.DoctorQuarantined():
            doctor = s(doctor, chip_id=None, quarantined_until=event.until)
        case rt.RequestQueued():
            state.backlog.add(event)
            return state
        case rt.RequestServed() | rt.RequestCancelled():
            state.backlog.remove(event.request_id)
            return state
        case rt.DoctorErased():
            return state  # what stays of the doctor here is no personal data (decide.py)
    state.doctors.put(event.doctor_id, doctor)
    return state


def _evolve_ledger(state: BalancerState, event: msg.AnyMessageEvent) -> BalancerState:
    match event:
        case msg.SendAttempted():
            day = local_day(event.occurred_at)
            if day > state.fleet.day:
                _forget_attempts(state, day - ATTEMPT_MEMORY_DAYS)
            state.fleet.count_send(event.chip_id, day, event.consented)
            state.attempts[event.attempt_id] = Attempt(chip_id=event.chip_id,
                                                       doctor_id=event.doctor_id, day=day)
            state.backlog.remove(event.attempt_id)  # served, even if the RequestServed that
            # says so was never written (crash right after the attempt)
            if event.kind == "prospecting":
                _note_prospecting(state, event.doctor_id, event.occurred_at)
        case msg.SendDispatched() | msg.SendFailed() | msg.SendUnknown():
            attempt = state.attempts.get(event.attempt_id)
            if attempt is not None:
                attempt.outcome = _OUTCOME[type(event)]
        case msg.UnknownSendSettled():
            attempt = state.attempts.get(event.attempt_id)
            if attempt is not None:
                attempt.outcome = _SETTLED[event.verdict]
    return state


def _forget_attempts(state: BalancerState, before_day: int) -> None:
    """Drop attempts from before `before_day`, oldest first, so memory is bounded by days of
    traffic rather than growing for ever. A rebuilt leader replays only the ledger horizon,
    so this forgets nothing a takeover would have remembered: a request retried with an id
    older than that is as new to a running leader as to a fresh one."""
    attempts = state.attempts
    while attempts:
        attempt_id = next(iter(attempts))
        if attempts[attempt_id].day >= before_day:
            return
        del attempts[attempt_id]


_OUTCOME: dict[type[msg.MessageEvent], ReplyStatus] = {
    msg.SendDispatched: ReplyStatus.DISPATCHED, msg.SendFailed: ReplyStatus.FAILED,
    msg.SendUnknown: ReplyStatus.UNKNOWN}
_SETTLED = {msg.Verdict.DELIVERED: ReplyStatus.DISPATCHED, msg.Verdict.NOT_SENT: ReplyStatus.FAILED}


def _note_prospecting(state: BalancerState, doctor_id: str, at: datetime) -> None:
    doctor = state.doctors.get(doctor_id)
    recent = (*(t for t in doctor.prospected_at if t > at - WEEK), at)
    state.doctors.put(doctor_id, msgspec.structs.replace(doctor, prospected_at=recent))


def apply_chip_event(state: BalancerState, event: AnyChipEvent) -> chip_lifecycle.ChipState:
    """Fold a chip event with the chip's own `evolve`; returns the chip's new state."""
    return state.fleet.fold(event)


def apply_fleet_event(state: BalancerState, event: AnyFleetEvent) -> BalancerState:
    state.brake_until = event.until if isinstance(event, FleetBrakeEngaged) else None
    return state
