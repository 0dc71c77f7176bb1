"""What the balancer knows: chips, doctors, today's sends per chip, the backlog, the brake.

Rebuilt by folding ROUTE_EVENTS, MSG_EVENTS, CHIP_EVENTS and the fleet brake. With 100,000
doctors a copy-on-write state would copy that many entries per decision, so `BalancerState`
is owned by one balancer and `evolve` updates it in place; `decide` only ever reads it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from julia_chips.balancer.model.index import ChipIndex, Key
from julia_chips.balancer.model.protection import local_day
from julia_chips.chip.model import lifecycle as chip_lifecycle
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import AnyChipEvent, Status
from julia_chips.contract.fleet import AnyFleetEvent, FleetBrakeEngaged

WEEK = timedelta(days=7)
ATTEMPT_MEMORY_DAYS = 8  # local days of attempts kept: what a rebuild replays (ledger horizon)
SERVING = frozenset({Status.ACTIVE, Status.WARMING})


class Doctor(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str | None = None  # the chip holding the conversation; None: not assigned
    consented: bool = False  # wrote to us or opted in: may move to another chip on a ban
    opted_out: bool = False
    quarantined_until: datetime | None = None
    prospected_at: tuple[datetime, ...] = ()  # prospecting sends in the last week


class Attempt(msgspec.Struct, kw_only=True):
    chip_id: str
    doctor_id: str
    outcome: str | None = None  # dispatched | failed | unknown; None: in flight or crashed
    day: int = 0  # local day ordinal of the attempt, for forgetting it after ATTEMPT_MEMORY_DAYS


NO_DOCTOR = Doctor()


class BalancerState:
    """Mutable by design (see the module docstring); only `evolve` and `apply_*` write."""

    def __init__(self) -> None:
        self.chips: dict[str, chip_lifecycle.ChipState] = {}
        self.serving: dict[str, chip_lifecycle.ChipState] = {}  # active or warming only
        self.doctors: dict[str, Doctor] = {}
        self.holders: dict[str, set[str]] = {}  # chip_id -> doctors it holds
        self.day = 0  # local day ordinal `used` counts for
        self.used: dict[str, int] = {}  # sends attempted today per chip
        self.attempts: dict[str, Attempt] = {}  # by attempt id (= request command id), oldest
        # first; pruned to ATTEMPT_MEMORY_DAYS at each new local day (see `_forget_attempts`)
        self.backlog: dict[str, rt.RequestQueued] = {}  # by request id, in arrival order
        self.waiting: dict[str, int] = {}  # doctor_id -> their requests in the backlog
        self.brake_until: datetime | None = None
        self.index = ChipIndex(self._chip_key, self.serving)

    def _chip_key(self, chip_id: str) -> Key | None:
        """The chip's rank for a new conversation on the index's day; None: cannot take one."""
        chip = self.serving.get(chip_id)
        if chip is None:
            return None
        view = self.index.view
        counting = view is not None and view[0] == view[1]  # decisions are on `self.day`
        left = chip.daily_cap - (self.used.get(chip_id, 0) if counting else 0)
        return None if left <= 0 else (-left, -health_of(self, chip), chip_id)

    def doctor(self, doctor_id: str) -> Doctor:
        return self.doctors.get(doctor_id, NO_DOCTOR)

    def used_today(self, chip_id: str, now: datetime) -> int:
        return self.used.get(chip_id, 0) if local_day(now) == self.day else 0

    def remaining(self, chip_id: str, now: datetime) -> int:
        chip = self.chips.get(chip_id)
        return 0 if chip is None else max(0, chip.daily_cap - self.used_today(chip_id, now))

    def brake_engaged(self, now: datetime) -> bool:
        return self.brake_until is not None and now < self.brake_until


def health_of(state: BalancerState, chip: chip_lifecycle.ChipState) -> float:
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


def _move(state: BalancerState, doctor_id: str, doctor: Doctor, chip_id: str | None) -> None:
    if doctor.chip_id is not None:
        state.holders.get(doctor.chip_id, set()).discard(doctor_id)
    if chip_id is not None:
        state.holders.setdefault(chip_id, set()).add(doctor_id)


def evolve(state: BalancerState, event: rt.AnyRouteEvent | msg.AnyMessageEvent) -> BalancerState:
    """Apply a route or ledger event; total over both unions."""
    if isinstance(event, msg.MessageEvent):
        return _evolve_ledger(state, event)
    s = msgspec.structs.replace
    doctor = state.doctor(event.doctor_id)
    match event:
        case rt.ConversationAssigned() | rt.ConversationReassigned():
            _move(state, event.doctor_id, doctor, event.chip_id)
            doctor = s(doctor, chip_id=event.chip_id, consented=doctor.consented or event.consented)
        case rt.DoctorOptedOut():
            doctor = s(doctor, opted_out=True)
        case rt.DoctorOptedIn():
            doctor = s(doctor, opted_out=False, consented=True)
        case rt.DoctorReplied():
            doctor = s(doctor, consented=True)
        case rt.DoctorQuarantined():
            _move(state, event.doctor_id, doctor, None)
            doctor = s(doctor, chip_id=None, quarantined_until=event.until)
        case rt.RequestQueued():
            if event.request_id not in state.backlog:
                state.backlog[event.request_id] = event
                state.waiting[event.doctor_id] = state.waiting.get(event.doctor_id, 0) + 1
            return state
        case rt.RequestServed() | rt.RequestCancelled():
            _leave_backlog(state, event.request_id, event.doctor_id)
            return state
    state.doctors[event.doctor_id] = doctor
    return state


def _evolve_ledger(state: BalancerState, event: msg.AnyMessageEvent) -> BalancerState:
    match event:
        case msg.SendAttempted():
            day = local_day(event.occurred_at)
            if day > state.day:
                state.day, state.used = day, {}
                _forget_attempts(state, day - ATTEMPT_MEMORY_DAYS)
            if day == state.day:
                state.used[event.chip_id] = state.used.get(event.chip_id, 0) + 1
            state.attempts[event.attempt_id] = Attempt(chip_id=event.chip_id,
                                                       doctor_id=event.doctor_id, day=day)
            _leave_backlog(state, event.attempt_id, event.doctor_id)  # served, even if the
            # RequestServed that says so was never written (crash right after the attempt)
            if event.kind == "prospecting":
                _note_prospecting(state, event.doctor_id, event.occurred_at)
        case msg.SendDispatched() | msg.SendFailed() | msg.SendUnknown():
            attempt = state.attempts.get(event.attempt_id)
            if attempt is not None:
                attempt.outcome = _OUTCOME[type(event)]
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


def _leave_backlog(state: BalancerState, request_id: str, doctor_id: str) -> None:
    if state.backlog.pop(request_id, None) is not None:
        left = state.waiting.pop(doctor_id, 1) - 1
        if left:
            state.waiting[doctor_id] = left


_OUTCOME: dict[type[msg.MessageEvent], str] = {
    msg.SendDispatched: "dispatched", msg.SendFailed: "failed", msg.SendUnknown: "unknown"}


def _note_prospecting(state: BalancerState, doctor_id: str, at: datetime) -> None:
    doctor = state.doctor(doctor_id)
    recent = (*(t for t in doctor.prospected_at if t > at - WEEK), at)
    state.doctors[doctor_id] = msgspec.structs.replace(doctor, prospected_at=recent)


def apply_chip_event(state: BalancerState, event: AnyChipEvent) -> chip_lifecycle.ChipState:
    """Fold a chip event with the chip's own `evolve`; returns the chip's new state."""
    before = state.chips.get(event.chip_id) or chip_lifecycle.ChipState(chip_id=event.chip_id)
    chip = chip_lifecycle.evolve(before, event)
    state.chips[chip.chip_id] = chip
    if chip.status in SERVING:
        state.serving[chip.chip_id] = chip
        state.index.touch(chip)
    else:
        state.serving.pop(chip.chip_id, None)
    return chip


def apply_fleet_event(state: BalancerState, event: AnyFleetEvent) -> BalancerState:
    state.brake_until = event.until if isinstance(event, FleetBrakeEngaged) else None
    return state
