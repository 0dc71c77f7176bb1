"""The fleet brake: a burst of bans stops prospecting everywhere until the cool-off passes.

Several chips banned close together say the fleet's behaviour (not one number's luck) is
the problem, so new outreach stops fleet-wide; replies to doctors continue. Bans counted
once are spent: after an engagement only bans that happen later can engage it again, so a
replayed history never re-engages a brake that was already released.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from julia_chips.contract.fleet import AnyFleetEvent, FleetBrakeEngaged, FleetBrakeReleased

OPERATOR = "operator"
COOL_OFF_PASSED = "cool-off passed"


class BrakePolicy(msgspec.Struct, frozen=True, kw_only=True):
    threshold: int = 3  # bans in the window that engage the brake
    window: timedelta = timedelta(hours=1)
    cool_off: timedelta = timedelta(hours=6)


DEFAULT_BRAKE = BrakePolicy()


class BrakeState(msgspec.Struct, frozen=True, kw_only=True):
    bans: tuple[tuple[datetime, str], ...] = ()  # (when, chip_id), oldest first, not yet spent
    engaged: bool = False
    until: datetime | None = None
    spent_before: datetime | None = None  # bans at or before this were counted already
    events: int = 0  # brake events folded: names the next one


def ban_seen(state: BrakeState, chip_id: str, at: datetime,
             policy: BrakePolicy = DEFAULT_BRAKE) -> BrakeState:
    """Count a chip's ban (from its `Banned` event); old and spent bans drop out."""
    if state.spent_before is not None and at <= state.spent_before:
        return state
    if any(chip == chip_id and when == at for when, chip in state.bans):
        return state  # the same ban seen twice (a replay)
    newest = max([at, *(when for when, _ in state.bans)])
    kept = tuple(b for b in (*state.bans, (at, chip_id)) if b[0] > newest - policy.window)
    return msgspec.structs.replace(state, bans=tuple(sorted(kept)))


def decide(state: BrakeState, now: datetime, policy: BrakePolicy = DEFAULT_BRAKE
           ) -> list[AnyFleetEvent]:
    """The fleet events the time `now` causes: engaged on a burst of bans, released when
    the cool-off has passed, else none."""
    if state.engaged:
        if state.until is not None and now >= state.until:
            return [FleetBrakeReleased(event_id=_id(state, "released"), occurred_at=now,
                                       reason=COOL_OFF_PASSED)]
        return []
    recent = [chip for when, chip in state.bans if now - policy.window < when <= now]
    if len(recent) < policy.threshold:
        return []
    return [FleetBrakeEngaged(
        event_id=_id(state, "engaged"), occurred_at=now,
        reason=f"{len(recent)} chips banned within {policy.window}: prospecting stops "
               "fleet-wide, replies continue",
        bans_in_window=len(recent), window_seconds=policy.window.total_seconds(),
        until=now + policy.cool_off)]


def release(state: BrakeState, now: datetime) -> list[AnyFleetEvent]:
    """An operator lifts the brake before its cool-off; nothing when it is not engaged."""
    if not state.engaged:
        return []
    return [FleetBrakeReleased(event_id=_id(state, "released"), occurred_at=now,
                               reason=OPERATOR)]


def _id(state: BrakeState, kind: str) -> str:
    return f"fleet-brake:{state.events + 1}:{kind}"


def evolve(state: BrakeState, event: AnyFleetEvent) -> BrakeState:
    replace = msgspec.structs.replace
    events = state.events + 1
    match event:
        case FleetBrakeEngaged():
            return replace(state, engaged=True, until=event.until, bans=(),
                           spent_before=event.occurred_at, events=events)
        case FleetBrakeReleased():
            return replace(state, engaged=False, until=None, events=events)
    raise TypeError(f"unknown fleet event {type(event).__name__}")
