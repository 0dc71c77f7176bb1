"""Failover: cooled chips hand their conversations on, spread; banned chips only consented."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest

from julia_chips.balancer.model.decide import RouteRefused, decide
from julia_chips.balancer.model.failover import plan_failover, plan_pool
from julia_chips.balancer.model.state import BalancerState, evolve
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from tests.unit.balancer_builders import (
    NOW,
    add_chip,
    apply,
    chip_command,
    run,
    scored,
    send,
)


def fleet_with_holder(conversations: list[tuple[str, bool]], others: int = 5) -> BalancerState:
    """Chip `hot` holds the given (doctor, consented) conversations; `others` active chips with
    equal room, one ready chip in reserve."""
    state = BalancerState()
    add_chip(state, "hot", Status.ACTIVE, 10_000)
    for doctor_id, consented in conversations:
        apply(state, [rt.ConversationAssigned(
            event_id=f"a-{doctor_id}", doctor_id=doctor_id, command_id="setup", occurred_at=NOW,
            chip_id="hot", consented=consented)])
    for n in range(others):
        add_chip(state, f"c{n}", Status.ACTIVE, 500)
    add_chip(state, "spare", Status.READY, 500)
    return state


def test_cooling_a_chip_with_200_conversations_spreads_them_and_promotes_a_ready_chip() -> None:
    state = fleet_with_holder([(f"d{n:03}", n % 2 == 0) for n in range(200)])
    chip_command(state, "hot", cmd.Cool(command_id="cool", reason="rate limited"))
    events = apply(state, plan_failover(state, "hot", NOW, "cool-1"))
    moved = [e for e in events if isinstance(e, rt.ConversationReassigned)]
    assert len(moved) == 200 and not state.doctors.held_by("hot")
    per_chip = Counter(e.chip_id for e in moved)
    assert set(per_chip) == {f"c{n}" for n in range(5)}
    # Stated bound: with equal room no chip gets more than ceil(n / chips).
    assert max(per_chip.values()) <= math.ceil(200 / 5)
    moves = plan_pool(state, max_active=6)
    assert [(m.chip_id, m.promote) for m in moves] == [("spare", True)]


def test_failover_spreads_by_room_left_not_evenly_by_count() -> None:
    state = fleet_with_holder([(f"d{n:03}", True) for n in range(100)], others=0)
    add_chip(state, "big", Status.ACTIVE, 150)
    add_chip(state, "small", Status.ACTIVE, 50)
    chip_command(state, "hot", cmd.Cool(command_id="cool", reason="x"))
    per_chip = Counter(e.chip_id for e in plan_failover(state, "hot", NOW, "c")
                       if isinstance(e, rt.ConversationReassigned))
    assert per_chip == {"big": 100}  # water-filling: big still has more room after 100


def test_a_ban_moves_only_consented_conversations_and_quarantines_the_rest() -> None:
    state = fleet_with_holder([(f"c{n:03}", True) for n in range(100)]
                              + [(f"p{n:03}", False) for n in range(100)])
    apply(state, decide(state, rt.OptOut(command_id="o", doctor_id="c000", source="crm"), NOW))
    chip_command(state, "hot", cmd.ReportBan(command_id="ban", reason="banned", evidence="403"))
    events = apply(state, plan_failover(state, "hot", NOW, "ban-1"))
    moved = {e.doctor_id for e in events if isinstance(e, rt.ConversationReassigned)}
    held = {e.doctor_id for e in events if isinstance(e, rt.DoctorQuarantined)}
    assert moved == {f"c{n:03}" for n in range(1, 100)}  # the opted-out one stays put
    assert held == {f"p{n:03}" for n in range(100)}
    with pytest.raises(RouteRefused) as refused:
        decide(state, send("p007", kind="prospecting", consented=False), NOW + timedelta(days=1))
    assert refused.value.reason == "quarantined"
    after = NOW + timedelta(days=30, hours=1)
    assert decide(state, send("p007", kind="prospecting", consented=False), after)


def test_opted_out_doctors_are_never_reassigned() -> None:
    state = fleet_with_holder([("d1", True), ("d2", True)])
    run(state, rt.OptOut(command_id="o", doctor_id="d1", source="crm"))
    chip_command(state, "hot", cmd.Retire(command_id="r", reason="host lost"))
    events = plan_failover(state, "hot", NOW, "r")
    assert [e.doctor_id for e in events] == ["d2"]


def test_an_orphaned_conversation_moves_on_its_next_message() -> None:
    state = fleet_with_holder([("d1", False)])
    chip_command(state, "hot", cmd.TakeOutOfService(command_id="t", reason="pool"))
    events = run(state, send("d1", consented=False))
    assert isinstance(events[0], rt.ConversationReassigned)
    assert events[0].from_chip_id == "hot" and "ready" in events[0].reason


def test_pool_over_the_limit_takes_the_least_healthy_out() -> None:
    state = BalancerState()
    for n, health in enumerate((0.9, 0.2, 0.7)):
        add_chip(state, f"a{n}", Status.ACTIVE, 10)
        scored(state, f"a{n}", health)
    moves = plan_pool(state, max_active=2)
    assert [(m.chip_id, m.promote) for m in moves] == [("a1", False)]
    assert plan_pool(state, max_active=2, pending={"a1"}) == []


def test_evolve_is_total_over_route_events() -> None:
    state = BalancerState()
    for cls in rt.ROUTE_EVENT_TYPES:
        assert cls.__struct_config__.tag
    evolve(state, rt.DoctorReplied(event_id="e", doctor_id="d", command_id="c", occurred_at=NOW))
    assert state.doctors.get("d").consented
