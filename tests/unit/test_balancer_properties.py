"""Properties over random fleets, doctors and event orders (hypothesis)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from julia_chips.balancer.model.decide import Event, RouteRefused, decide
from julia_chips.balancer.model.failover import orphaned_chips, plan_failover
from julia_chips.balancer.model.fleet import can_serve
from julia_chips.balancer.model.protection import local_day, within_prospecting_hours
from julia_chips.balancer.model.state import BalancerState, evolve
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from tests.unit.balancer_builders import (
    NOW,
    add_chip,
    backlog_events,
    chip_command,
    send,
    snapshot,
)

DOCTORS = [f"d{n}" for n in range(8)]
chips = st.lists(st.tuples(st.sampled_from([Status.ACTIVE, Status.WARMING, Status.READY]),
                           st.integers(1, 8)), min_size=1, max_size=6)
doctor = st.sampled_from(DOCTORS)
minutes = st.integers(0, 24 * 60)
chip_commands = st.sampled_from([
    cmd.Cool(command_id="x", reason="r"), cmd.Resume(command_id="x"),
    cmd.ReportBan(command_id="x", reason="r", evidence="e"), cmd.Retire(command_id="x", reason="r"),
    cmd.PutInService(command_id="x"), cmd.TakeOutOfService(command_id="x", reason="r"),
    cmd.Reinstate(command_id="x")])
sends = st.tuples(st.just("send"), doctor, st.sampled_from(["reply", "prospecting"]),
                  st.booleans(), st.integers(0, 180))
chip_ops = st.tuples(st.just("chip"), st.integers(0, 5), chip_commands)
ops = st.lists(st.one_of(
    sends, sends, sends, sends, chip_ops, chip_ops,
    st.tuples(st.just("optout"), doctor), st.tuples(st.just("optin"), doctor),
    st.tuples(st.just("inbound"), doctor, st.sampled_from(["PARAR", "oi", "Sáir"])),
    st.tuples(st.just("backlog"), minutes),
), min_size=10, max_size=80)


class Checked:
    """Applies events one by one, checking each against the state just before it."""

    def __init__(self, state: BalancerState) -> None:
        self.state = state
        self.sent: Counter[tuple[str, int]] = Counter()

    def decided(self, decision: Callable[[], Sequence[Event]]) -> list[Event]:
        """The events of one decision (`decide`, a backlog pass, a failover plan)."""
        return list(decision())

    def apply(self, events: list[Event]) -> None:
        for event in events:
            self.check(event)
            evolve(self.state, event)

    def check(self, event: Event) -> None:
        state = self.state
        if isinstance(event, msg.SendAttempted):
            doctor = state.doctors.get(event.doctor_id)
            chip = state.fleet.chips[event.chip_id]
            assert not doctor.opted_out, "routed an opted-out doctor"
            assert can_serve(chip, event.consented), f"{chip.status} chip carried a message"
            day = (event.chip_id, local_day(event.occurred_at))
            self.sent[day] += 1
            assert self.sent[day] <= chip.daily_cap, "chip over its daily cap"
            if event.kind == "prospecting":
                assert within_prospecting_hours(event.occurred_at), "prospecting in quiet hours"
            assert doctor.chip_id in (None, event.chip_id)
        elif isinstance(event, rt.ConversationReassigned):
            old = state.fleet.chips.get(event.from_chip_id)
            assert state.doctors.get(event.doctor_id).chip_id == event.from_chip_id
            assert not can_serve(old, state.doctors.get(event.doctor_id).consented), \
                "moved needlessly"
            assert not state.doctors.get(event.doctor_id).opted_out
        elif isinstance(event, rt.ConversationAssigned):
            assert state.doctors.get(event.doctor_id).chip_id is None
        elif isinstance(event, rt.DoctorQuarantined):
            assert state.fleet.chips[event.chip_id].status is Status.BANNED


def step(checked: Checked, op: tuple[Any, ...], now: Any, n: int) -> Any:
    state = checked.state
    kind = op[0]
    if kind == "send":
        now += timedelta(minutes=op[4])
        request = send(op[1], kind=op[2], consented=op[3], command_id=f"r{n}")
        try:
            checked.apply(checked.decided(lambda: decide(state, request, now)))
        except RouteRefused as refused:
            assert str(refused) and refused.reason
    elif kind in ("optout", "optin"):
        cls = rt.OptOut if kind == "optout" else rt.OptIn
        command = cls(command_id=f"o{n}", doctor_id=op[1], source="t")
        checked.apply(checked.decided(lambda: decide(state, command, now)))
    elif kind == "inbound":
        inbound = rt.InboundMessage(command_id=f"i{n}", doctor_id=op[1], text=op[2])
        checked.apply(checked.decided(lambda: decide(state, inbound, now)))
    elif kind == "chip":
        chip_ids = sorted(state.fleet.chips)
        chip_id = chip_ids[op[1] % len(chip_ids)]
        chip_command(state, chip_id, op[2].__class__(**{**_fields(op[2]), "command_id": f"c{n}"}),
                     now)
        for orphaned in orphaned_chips(state):
            checked.apply(checked.decided(partial(plan_failover, state, orphaned, now, f"f{n}")))
    else:
        now += timedelta(minutes=op[1])
        checked.apply(checked.decided(lambda: backlog_events(state, now, f"b{n}")))
    return now


def _fields(command: Any) -> dict[str, Any]:
    return {f: getattr(command, f) for f in command.__struct_fields__}


@settings(max_examples=300, deadline=None)
@given(fleet=chips, operations=ops)
def test_routing_invariants_hold_for_any_fleet_and_event_order(
        fleet: list[tuple[Status, int]], operations: list[tuple[Any, ...]]) -> None:
    state = BalancerState()
    for n, (status, cap) in enumerate(fleet):
        add_chip(state, f"chip{n}", status, cap)
    checked = Checked(state)
    now = NOW
    for n, op in enumerate(operations):
        now = step(checked, op, now, n)


class ReadOnly(Checked):
    """Holds every decision to reading the state: nothing in it, the chip index's heaps
    included, may differ afterwards, whether the decision returned or refused."""

    def decided(self, decision: Callable[[], Sequence[Event]]) -> list[Event]:
        before = snapshot(self.state)
        try:
            return list(decision())
        finally:
            assert snapshot(self.state) == before, "a decision changed the state"


@settings(max_examples=200, deadline=None)
@given(fleet=chips, operations=ops)
def test_decisions_never_change_the_state(fleet: list[tuple[Status, int]],
                                         operations: list[tuple[Any, ...]]) -> None:
    state = BalancerState()
    for n, (status, cap) in enumerate(fleet):
        add_chip(state, f"chip{n}", status, cap)
    checked = ReadOnly(state)
    now = NOW
    for n, op in enumerate(operations):
        now = step(checked, op, now, n)
