"""Fleets for balancer tests, built from real chip events so the chip fold is exercised."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from julia_chips.balancer.model.backlog_pass import serve_backlog
from julia_chips.balancer.model.decide import Event, decide
from julia_chips.balancer.model.state import BalancerState, apply_chip_event, evolve
from julia_chips.chip.model import lifecycle as chip_lifecycle
from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status

# A Wednesday, 14:00 in São Paulo: inside prospecting hours.
NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
_ids = itertools.count()


def chip_history(chip_id: str, status: Status, cap: int, at: datetime = NOW,
                 phone_number: str | None = None) -> list[ev.AnyChipEvent]:
    common: dict[str, Any] = {"chip_id": chip_id, "command_id": "setup", "occurred_at": at}
    n = itertools.count()

    def e(cls: type[ev.ChipEvent], **fields: Any) -> Any:
        return cls(event_id=f"{chip_id}:setup:{next(n)}", **common, **fields)

    events = [e(ev.Provisioned), e(ev.ActivationStarted),
              e(ev.Activated, instance=f"inst-{chip_id}", host="h", daily_cap=cap,
                phone_number=phone_number)]
    if status in (Status.READY, Status.ACTIVE):
        events.append(e(ev.Ready, good_days=7))
    if status is Status.ACTIVE:
        events.append(e(ev.InService))
    return events


def add_chip(state: BalancerState, chip_id: str, status: Status, cap: int) -> None:
    for event in chip_history(chip_id, status, cap):
        apply_chip_event(state, event)


def chip_command(state: BalancerState, chip_id: str, command: Any,
                 at: datetime = NOW) -> list[ev.AnyChipEvent]:
    """Run a chip command through the chip's own rules; [] when the chip refuses it."""
    chip = state.fleet.chips[chip_id]
    try:
        events = chip_lifecycle.decide(chip, command, at)
    except chip_lifecycle.ChipRuleBroken:
        return []
    for event in events:
        apply_chip_event(state, event)
    return events


def scored(state: BalancerState, chip_id: str, score: float) -> None:
    """The health monitor's score for a chip, arriving as it does: on `TrafficObserved`."""
    observe = cmd.ObserveTraffic(command_id=f"score-{next(_ids)}", health_score=score)
    assert chip_command(state, chip_id, observe), f"{chip_id} refused ObserveTraffic"


def send(doctor_id: str, kind: str = "reply", consented: bool = True, text: str = "Olá",
         command_id: str | None = None) -> rt.SendRequest:
    return rt.SendRequest(command_id=command_id or f"req-{next(_ids)}", doctor_id=doctor_id,
                          doctor_phone="+5511987654321", text=text, kind=kind,  # type: ignore[arg-type]
                          consented=consented)


def apply(state: BalancerState, events: list[Event]) -> list[Event]:
    for event in events:
        evolve(state, event)
    return events


def run(state: BalancerState, command: rt.AnyRouteCommand, at: datetime = NOW) -> list[Event]:
    return apply(state, decide(state, command, at))


def backlog_events(state: BalancerState, now: datetime, cause_id: str) -> list[Event]:
    """A backlog pass's events in append order, entry after entry."""
    return [e for serving in serve_backlog(state, now, cause_id) for e in serving.events]


def later(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def snapshot(value: object) -> object:
    """`value` as plain data with every attribute reachable from it (a chip index's heaps
    too) and dicts in their order, so two snapshots are equal only if nothing changed."""
    if isinstance(value, msgspec.Struct):
        return type(value), [snapshot(getattr(value, f)) for f in value.__struct_fields__]
    if isinstance(value, dict):
        return [(k, snapshot(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [snapshot(v) for v in value]
    if isinstance(value, set | frozenset):
        return frozenset(value)
    if hasattr(value, "__dict__"):
        return type(value), [(k, snapshot(v)) for k, v in vars(value).items() if not callable(v)]
    return value
