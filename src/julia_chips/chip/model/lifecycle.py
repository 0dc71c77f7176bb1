"""A chip's lifecycle as two pure functions: `decide` what a command causes, `evolve` state.

The transition table is DESIGN.md's "Chip states": a command that asks for a move not in
it is refused with the current state and the allowed moves, and nothing is appended.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec

from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.warmer.model.policy import DEFAULT_WARMUP, DayFigures, WarmupPolicy, judge_day
from julia_chips.warmer.model.policy import warmer_progress as progress_of

E = TypeVar("E", bound=ev.ChipEvent)
NEW = "new"  # the state name of a chip with no events yet

_OUT = frozenset({Status.COOLING, Status.RELINKING, Status.BANNED, Status.RETIRED})
MOVES: dict[Status, frozenset[Status]] = {
    Status.PROVISIONING: frozenset({Status.ACTIVATING, Status.RETIRED}),
    Status.ACTIVATING: frozenset({Status.WARMING, Status.BANNED, Status.RETIRED}),
    Status.WARMING: _OUT | {Status.READY},
    Status.READY: _OUT | {Status.ACTIVE},
    Status.ACTIVE: _OUT | {Status.READY},
    # + back where it came from
    Status.COOLING: frozenset({Status.RELINKING, Status.BANNED, Status.RETIRED}),
    Status.RELINKING: frozenset({Status.COOLING, Status.BANNED, Status.RETIRED}),
    Status.BANNED: frozenset({Status.WARMING, Status.RETIRED}),
    Status.RETIRED: frozenset(),
}
# A logged-out chip can be linked again from wherever it was linked (a resting one too).
RELINKABLE = frozenset({Status.WARMING, Status.READY, Status.ACTIVE, Status.COOLING})
# What an abandoned activation may give back while the chip waits for a retry.
RELEASING = frozenset({Status.ACTIVATING, Status.RETIRED})
OBSERVABLE = frozenset({Status.WARMING, Status.READY, Status.ACTIVE, Status.COOLING})
# Rest grows with repeated trouble: 1 h, then 4 h, then a day.
COOLING_STEPS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
COOL_STREAK_WINDOW = timedelta(days=7)


class ChipRuleBroken(Exception):
    """A command the chip refuses; says the state and where the chip may go from it."""

    def __init__(self, message: str, state: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.state = state
        self.allowed = allowed


class ChipState(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    status: Status | None = None  # None: no events yet
    phone_number: str | None = None
    ddd: int | None = None
    salvy_account_id: str | None = None
    host: str | None = None
    instance: str | None = None
    warm_day: int = 0  # the warm day in progress, 1-based; 0 before activation
    good_days: int = 0
    daily_cap: int = 0
    warmer_progress: float = 0.0
    day: DayFigures = DayFigures()  # counters since the last day close
    cooled_from: Status | None = None
    cooling_until: datetime | None = None
    cool_streak: int = 0
    last_cooled_at: datetime | None = None
    relink_from: Status | None = None  # where `Relinked` takes a relinking chip back
    relink_attempt: int = 0  # tries of the relink in progress, 0 when none
    activated_at: datetime | None = None
    ready_at: datetime | None = None
    banned_at: datetime | None = None
    health_score: float | None = None  # the health monitor's latest, 1 healthy .. 0 unusable
    version: int = 0  # events applied


def state_name(state: ChipState) -> str:
    return state.status.value if state.status else NEW


def allowed_moves(state: ChipState) -> list[str]:
    if state.status is None:
        return [Status.PROVISIONING.value]
    moves = set(MOVES[state.status])
    if state.status is Status.COOLING and state.cooled_from:
        moves.add(state.cooled_from)
    if state.status is Status.RELINKING and state.relink_from:
        moves.add(state.relink_from)
    return sorted(m.value for m in moves)


def _refuse(state: ChipState, command: cmd.ChipCommand, why: str = "") -> ChipRuleBroken:
    name = type(command).__name__
    detail = f": {why}" if why else ""
    return ChipRuleBroken(
        f"{name} is not accepted while {state_name(state)}{detail}",
        state_name(state),
        allowed_moves(state),
    )


class _Stamp:
    """Builds events with the common fields; ids derive from the command id so retries dedupe."""

    def __init__(self, state: ChipState, command: cmd.ChipCommand, now: datetime) -> None:
        self.chip_id = state.chip_id
        self.command_id = command.command_id
        self.now = now
        self.count = 0

    def __call__(self, cls: type[E], **fields: Any) -> E:
        event_id = f"{self.chip_id}:{self.command_id}:{self.count}"
        self.count += 1
        return cls(event_id=event_id, chip_id=self.chip_id, command_id=self.command_id,
                   occurred_at=self.now, **fields)


def decide(
    state: ChipState, command: cmd.AnyChipCommand, now: datetime,
    policy: WarmupPolicy = DEFAULT_WARMUP,
) -> list[ev.AnyChipEvent]:
    """Events `command` causes; raises ChipRuleBroken, never does I/O."""
    stamp = _Stamp(state, command, now)
    status = state.status
    match command:
        case cmd.Provision() if status is None:
            return [stamp(ev.Provisioned, phone_number=command.phone_number,
                                   ddd=command.ddd, salvy_account_id=command.salvy_account_id)]
        case _ if status is None:
            raise ChipRuleBroken(f"{type(command).__name__}: chip {state.chip_id} does not exist; "
                                 "send Provision first",
                                 NEW, allowed_moves(state))
        case cmd.StartActivation() if status is Status.PROVISIONING:
            return [stamp(ev.ActivationStarted, host=command.host)]
        case cmd.CompleteActivation() if status is Status.ACTIVATING:
            return [stamp(ev.Activated, instance=command.instance, host=command.host,
                          daily_cap=policy.first_cap, phone_number=command.phone_number,
                          salvy_account_id=command.salvy_account_id)]
        case cmd.FailActivation() if status is Status.ACTIVATING:
            return [stamp(ev.ActivationFailed, reason=command.reason,
                                        retryable=command.retryable, step=command.step)]
        case cmd.RetryActivation() if status is Status.ACTIVATING:
            return [stamp(ev.ActivationRetried)]
        case cmd.ObserveTraffic() if status in OBSERVABLE:
            return [stamp(ev.TrafficObserved, sent=command.sent, delivered=command.delivered,
                                 read=command.read, replied=command.replied,
                                 failed=command.failed, received=command.received,
                                 health_score=command.health_score)]
        case cmd.CloseWarmDay() if status is Status.WARMING:
            return _close_warm_day(state, command, now, stamp, policy)
        case cmd.PutInService() if status is Status.READY:
            return [stamp(ev.InService)]
        case cmd.TakeOutOfService() if status is Status.ACTIVE:
            return [stamp(ev.OutOfService, reason=command.reason)]
        case cmd.Cool() if status in (Status.WARMING, Status.READY, Status.ACTIVE):
            return [_cooled(state, command.reason, command.until, now, stamp)]
        case cmd.Resume() if status is Status.COOLING and state.cooled_from is not None:
            return [stamp(ev.Resumed, status=state.cooled_from)]
        case cmd.ReportBan() if status is not None and Status.BANNED in MOVES[status]:
            return [stamp(ev.Banned, reason=command.reason, evidence=command.evidence,
                              previous_status=status)]
        case cmd.Reinstate() if status is Status.BANNED:
            return [stamp(ev.Reinstated, daily_cap=policy.first_cap)]
        case cmd.Retire() if status is not Status.RETIRED:
            return [stamp(ev.Retired, reason=command.reason, previous_status=status)]
        case cmd.RecordRelease() if status in RELEASING:
            return [stamp(ev.ResourceReleased, resource=command.resource, detail=command.detail)]
        case cmd.Relink() if status in RELINKABLE:
            return [stamp(ev.RelinkRequested, reason=command.reason, evidence=command.evidence,
                          previous_status=status)]
        case cmd.StartRelink() if status is Status.RELINKING:
            return [stamp(ev.RelinkStarted, attempt=command.attempt,
                          pairing_code=command.pairing_code, qr=command.qr)]
        case cmd.CompleteRelink() if status is Status.RELINKING and state.relink_from:
            return [stamp(ev.Relinked, status=state.relink_from)]
        case cmd.FailRelink() if status is Status.RELINKING:
            return _relink_failed(state, command, stamp)
    raise _refuse(state, command)


def _relink_failed(state: ChipState, command: cmd.FailRelink, stamp: _Stamp
                   ) -> list[ev.AnyChipEvent]:
    """A failed try keeps the chip relinking; the last one cools it for an operator, back to
    where it rested before if it was resting, with the logout named in the reason."""
    events: list[ev.AnyChipEvent] = [
        stamp(ev.RelinkFailed, attempt=command.attempt, reason=command.reason)]
    if command.give_up:
        back = state.cooled_from if state.relink_from is Status.COOLING else state.relink_from
        why = (f"logged out (401) and not linked again after {command.attempt} tries: "
               f"{command.reason}: needs review")
        events.append(stamp(ev.Cooled, reason=why[:1000], until=None,
                            previous_status=back or Status.WARMING,
                            cool_streak=state.cool_streak + 1))
    return events


def next_cooling(state: ChipState, now: datetime) -> tuple[int, timedelta]:
    """The cool streak and default rest a `Cool` without `until` gives at `now`: the streak
    continues only if the last rest was within COOL_STREAK_WINDOW."""
    recent = state.last_cooled_at is not None and now - state.last_cooled_at < COOL_STREAK_WINDOW
    streak = state.cool_streak + 1 if recent else 1
    return streak, COOLING_STEPS[min(streak, len(COOLING_STEPS)) - 1]


def _cooled(
    state: ChipState, reason: str, until: datetime | None, now: datetime, stamp: _Stamp
) -> ev.Cooled:
    streak, rest = next_cooling(state, now)
    assert state.status is not None
    return stamp(ev.Cooled, reason=reason, until=until or now + rest,
                     previous_status=state.status, cool_streak=streak)


def _close_warm_day(
    state: ChipState, command: cmd.CloseWarmDay, now: datetime, stamp: _Stamp,
    policy: WarmupPolicy,
) -> list[ev.AnyChipEvent]:
    if command.day_number != state.warm_day:
        raise _refuse(state, command, f"day {state.warm_day} is open, not day {command.day_number}")
    verdict = judge_day(state.day, state.daily_cap, policy)
    good_days = state.good_days + verdict.good
    figures = state.day
    events: list[ev.AnyChipEvent] = [stamp(
        ev.WarmDayCompleted, day_number=command.day_number,
        messages_sent=figures.sent, messages_received=figures.received,
        delivered=figures.delivered, read=figures.read, replied=figures.replied,
        failed=figures.failed, daily_cap=state.daily_cap, next_daily_cap=verdict.next_cap,
        advanced=verdict.good, good_days=good_days, reason=verdict.reason,
        warmer_progress=progress_of(good_days, policy),
    )]
    if good_days >= policy.min_days:
        events.append(stamp(ev.Ready, good_days=good_days))
    elif command.day_number >= policy.max_days:
        why = (f"warm-up not passed after {command.day_number} days "
               f"({good_days}/{policy.min_days} good days): needs review")
        events.append(stamp(ev.Cooled, reason=why, until=None,
                                previous_status=Status.WARMING, cool_streak=state.cool_streak + 1))
    return events


def evolve(state: ChipState, event: ev.AnyChipEvent) -> ChipState:
    """The state after `event`; total over every event, trusts that `decide` allowed it."""
    s = msgspec.structs.replace
    state = s(state, version=state.version + 1)
    match event:
        case ev.Provisioned():
            return s(state, status=Status.PROVISIONING, phone_number=event.phone_number,
                     ddd=event.ddd, salvy_account_id=event.salvy_account_id)
        case ev.ActivationStarted():
            return s(state, status=Status.ACTIVATING, host=event.host or state.host)
        case ev.Activated() | ev.Reinstated():
            return _start_warmup(state, event)
        case ev.ActivationFailed() | ev.ActivationRetried() | ev.ResourceReleased():
            return state
        case ev.RelinkRequested():
            return s(state, status=Status.RELINKING, relink_from=event.previous_status,
                     relink_attempt=0)
        case ev.RelinkStarted() | ev.RelinkFailed():
            return s(state, relink_attempt=event.attempt)
        case ev.Relinked():
            return s(state, status=event.status, **_NO_RELINK)
        case ev.TrafficObserved():
            score = state.health_score if event.health_score is None else event.health_score
            return s(state, day=_add(state.day, event), health_score=score)
        case ev.WarmDayCompleted():
            return s(state, warm_day=event.day_number + 1, good_days=event.good_days,
                     daily_cap=event.next_daily_cap, warmer_progress=event.warmer_progress,
                     day=DayFigures())
        case ev.Ready():
            return s(state, status=Status.READY, ready_at=event.occurred_at, warmer_progress=1.0)
        case ev.InService():
            return s(state, status=Status.ACTIVE)
        case ev.OutOfService():
            return s(state, status=Status.READY)
        case ev.Cooled():
            # A rest during warm-up is a restriction signal: that day may not count as good.
            day = s(state.day, restrictions=state.day.restrictions + 1) \
                if event.previous_status is Status.WARMING else state.day
            return s(state, status=Status.COOLING, cooled_from=event.previous_status,
                     cooling_until=event.until, cool_streak=event.cool_streak,
                     last_cooled_at=event.occurred_at, day=day, **_NO_RELINK)
        case ev.Resumed():
            return s(state, status=event.status, cooled_from=None, cooling_until=None)
        case ev.Banned():
            return s(state, status=Status.BANNED, banned_at=event.occurred_at,
                     cooled_from=None, cooling_until=None, **_NO_RELINK)
        case ev.Retired():
            return s(state, status=Status.RETIRED, **_NO_RELINK)
    raise TypeError(f"unknown event {type(event).__name__}")


_NO_RELINK: dict[str, Any] = {"relink_from": None, "relink_attempt": 0}


def _start_warmup(state: ChipState, event: ev.Activated | ev.Reinstated) -> ChipState:
    extra: dict[str, Any] = {}
    if isinstance(event, ev.Activated):
        extra = {"instance": event.instance, "host": event.host, "activated_at": event.occurred_at,
                 "phone_number": event.phone_number or state.phone_number,
                 "salvy_account_id": event.salvy_account_id or state.salvy_account_id}
    return msgspec.structs.replace(
        state, status=Status.WARMING, warm_day=1, good_days=0, daily_cap=event.daily_cap,
        warmer_progress=0.0, day=DayFigures(), ready_at=None, **extra)


def _add(day: DayFigures, seen: ev.TrafficObserved) -> DayFigures:
    return DayFigures(sent=day.sent + seen.sent, delivered=day.delivered + seen.delivered,
                      read=day.read + seen.read, replied=day.replied + seen.replied,
                      failed=day.failed + seen.failed, received=day.received + seen.received,
                      restrictions=day.restrictions)


def fold(chip_id: str, events: list[ev.AnyChipEvent]) -> ChipState:
    """A chip's state rebuilt from its whole history."""
    state = ChipState(chip_id=chip_id)
    for event in events:
        state = evolve(state, event)
    return state
