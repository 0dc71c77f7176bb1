"""Given a fleet and doctors, when a request comes, then these events (or this refusal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from julia_chips.balancer.model.decide import RouteRefused, decide
from julia_chips.balancer.model.state import BalancerState, apply_fleet_event
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.fleet import FleetBrakeEngaged
from tests.unit.balancer_builders import (
    NOW,
    add_chip,
    apply,
    backlog_events,
    later,
    run,
    scored,
    send,
)


def fleet(**chips: tuple[Status, int]) -> BalancerState:
    state = BalancerState()
    for chip_id, (status, cap) in chips.items():
        add_chip(state, chip_id, status, cap)
    return state


def attempt_of(events: list[object]) -> msg.SendAttempted:
    return next(e for e in events if isinstance(e, msg.SendAttempted))


def test_new_conversation_goes_to_the_chip_with_most_capacity_left() -> None:
    state = fleet(a=(Status.ACTIVE, 10), b=(Status.ACTIVE, 30), c=(Status.ACTIVE, 20))
    events = run(state, send("d1"))
    assert isinstance(events[0], rt.ConversationAssigned)
    assert events[0].chip_id == "b"
    assert attempt_of(events).chip_id == "b"


def test_health_breaks_a_capacity_tie() -> None:
    state = fleet(a=(Status.ACTIVE, 10), b=(Status.ACTIVE, 10))
    scored(state, "a", 0.4)
    scored(state, "b", 0.9)
    assert attempt_of(run(state, send("d1"))).chip_id == "b"


def test_a_doctor_stays_with_their_chip_while_it_serves() -> None:
    state = fleet(a=(Status.ACTIVE, 10), b=(Status.ACTIVE, 10))
    first = attempt_of(run(state, send("d1"))).chip_id
    for _ in range(5):
        events = run(state, send("d1"))
        assert len(events) == 1 and attempt_of(events).chip_id == first


def test_a_sticky_chip_at_its_cap_queues_rather_than_moves() -> None:
    state = fleet(a=(Status.ACTIVE, 1), b=(Status.ACTIVE, 1))
    chip = attempt_of(run(state, send("d1"))).chip_id
    events = run(state, send("d1"))
    assert [type(e) for e in events] == [rt.RequestQueued]
    assert "daily cap" in events[0].reason and chip in events[0].reason  # type: ignore[union-attr]
    assert state.doctors.get("d1").chip_id == chip


def test_warming_chips_take_only_consented_conversations() -> None:
    state = fleet(w=(Status.WARMING, 50), a=(Status.ACTIVE, 5))
    assert attempt_of(run(state, send("d1", consented=True))).chip_id == "w"
    assert attempt_of(run(state, send("d2", kind="prospecting", consented=False))).chip_id == "a"


def test_no_capacity_anywhere_queues_and_a_pass_serves_in_order_later() -> None:
    state = fleet(a=(Status.ACTIVE, 1))
    run(state, send("d0"))
    queued = [run(state, send(f"d{n}", command_id=f"q{n}"))[0] for n in (1, 2)]
    assert all(isinstance(e, rt.RequestQueued) for e in queued)
    tomorrow = NOW + timedelta(days=1)
    served = apply(state, backlog_events(state, tomorrow, "pass-1"))
    assert [e.request_id for e in served if isinstance(e, rt.RequestServed)] == ["q1"]
    assert list(state.backlog) == ["q2"]


def test_opted_out_doctor_is_refused_and_their_backlog_cancelled() -> None:
    state = fleet(a=(Status.ACTIVE, 0))
    run(state, send("d1", command_id="q1"))
    events = run(state, rt.InboundMessage(command_id="in1", doctor_id="d1", text="Párar"))
    assert isinstance(events[0], rt.DoctorOptedOut) and events[0].source == "keyword"
    assert isinstance(events[1], rt.RequestCancelled) and not state.backlog
    with pytest.raises(RouteRefused) as refused:
        decide(state, send("d1"), NOW)
    assert refused.value.reason == "opted_out"
    run(state, rt.OptIn(command_id="oi", doctor_id="d1", source="crm"))
    assert not state.doctors.get("d1").opted_out and state.doctors.get("d1").consented


@pytest.mark.parametrize(("at", "reason"), [
    (datetime(2026, 11, 29, 15, tzinfo=UTC), "quiet_hours"),  # Sunday
    (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "quiet_hours"),  # 20:30 local
])
def test_prospecting_outside_business_hours_is_refused(at: datetime, reason: str) -> None:
    state = fleet(a=(Status.ACTIVE, 10))
    with pytest.raises(RouteRefused) as refused:
        decide(state, send("d1", kind="prospecting", consented=False), at)
    assert refused.value.reason == reason and "America/Sao_Paulo" in str(refused.value)
    assert decide(state, send("d1", kind="reply"), at)  # replies are not prospecting


def test_weekly_prospecting_cap_per_doctor() -> None:
    state = fleet(a=(Status.ACTIVE, 100))
    for hours in (0, 1):
        run(state, send("d1", kind="prospecting", consented=False), later(hours))
    with pytest.raises(RouteRefused) as refused:
        decide(state, send("d1", kind="prospecting", consented=False), later(2))
    assert refused.value.reason == "frequency_cap"
    assert decide(state, send("d1", kind="prospecting", consented=False), later(24 * 7 + 1))


def test_the_fleet_brake_stops_prospecting_only() -> None:
    state = fleet(a=(Status.ACTIVE, 100))
    apply_fleet_event(state, FleetBrakeEngaged(event_id="b", occurred_at=NOW, reason="ban wave",
                                               bans_in_window=5, window_seconds=3600,
                                               until=later(3)))
    with pytest.raises(RouteRefused) as refused:
        decide(state, send("d1", kind="prospecting", consented=False), later(1))
    assert refused.value.reason == "brake_engaged"
    assert decide(state, send("d1"), later(1))
    assert decide(state, send("d1", kind="prospecting", consented=False), later(4))


def test_repeated_opt_out_and_inbound_are_no_ops() -> None:
    state = fleet(a=(Status.ACTIVE, 10))
    assert run(state, rt.InboundMessage(command_id="i1", doctor_id="d1", text="Oi, tenho interesse"))
    assert state.doctors.get("d1").consented
    assert run(state, rt.InboundMessage(command_id="i2", doctor_id="d1", text="sim")) == []
    assert run(state, rt.OptOut(command_id="o1", doctor_id="d1", source="crm"))
    assert run(state, rt.OptOut(command_id="o2", doctor_id="d1", source="crm")) == []


@pytest.mark.parametrize(("verb", "body", "field"), [
    ("send", b'{"command_id":"c","doctor_id":"dr.1","doctor_phone":"+5511987654321",'
             b'"text":"hi","kind":"reply"}', "doctor_id"),
    ("send", b'{"command_id":"c","doctor_id":"d1","doctor_phone":"+5511987654321",'
             b'"text":"   ","kind":"reply"}', "text"),
    ("send", b'{"command_id":"c","doctor_id":"d1","doctor_phone":"+5511987654321",'
             b'"text":"hi","kind":"spam"}', "kind"),
    ("send", b'{"command_id":"c","doctor_id":"d1","doctor_phone":"12",'
             b'"text":"hi","kind":"reply"}', "doctor_phone"),
    ("send", b'{"command_id":"c","doctor_id":"d1","doctor_phone":"+5511987654321",'
             b'"text":"hi","kind":"reply","urgent":true}', "urgent"),
    ("optout", b'{"command_id":"c","doctor_id":"d1"}', "source"),
    ("nope", b"{}", "route.cmd.nope"),
    ("send", b"not json", "JSON"),
])
def test_bad_requests_name_the_field(verb: str, body: bytes, field: str) -> None:
    with pytest.raises(rt.BadRouteCommand) as bad:
        rt.decode_route_command(verb, body)
    assert field in str(bad.value)
