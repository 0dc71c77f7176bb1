"""The doctor read-model folds: they agree with the balancer's own `evolve`, settle a backlog
entry or an attempt the way the balancer does, and a replayed event changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from julia_chips.balancer.model.state import BalancerState, evolve
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.projections.base import Envelope
from julia_chips.projections.doctors import ATTEMPTS, DOCTORS
from julia_chips.projections.keyed import KeyedFold
from julia_chips.projections.rows.doctor import (
    DoctorRow,
    attempt_step,
    backlog_step,
    doctor_step,
)

T0 = datetime(2026, 11, 25, 17, tzinfo=UTC)
DOCS = ("d1", "d2", "d3")
CHIPS = ("a", "b", "c")


def _route_event(kind: int, doctor: str, chip: str, flag: bool, n: int) -> rt.AnyRouteEvent:
    c: dict[str, Any] = {"event_id": f"e{n}", "doctor_id": doctor, "command_id": f"c{n}",
                         "occurred_at": T0 + timedelta(minutes=n)}
    made: list[rt.AnyRouteEvent] = [
        rt.ConversationAssigned(chip_id=chip, consented=flag, **c),
        rt.ConversationReassigned(from_chip_id="z", chip_id=chip, consented=flag,
                                  reason="cooled", **c),
        rt.DoctorOptedOut(source="keyword" if flag else "crm", **c),
        rt.DoctorOptedIn(source="crm", **c),
        rt.DoctorReplied(chip_id=chip, **c),
        rt.DoctorQuarantined(chip_id=chip, until=T0 + timedelta(days=30), reason="ban", **c),
        rt.RequestQueued(request_id=f"q{n % 3}", doctor_phone="+5511987654321", text="oi",
                         kind="reply", consented=flag, reason="no capacity", **c),
        rt.RequestServed(request_id=f"q{n % 3}", chip_id=chip, **c),
        rt.RequestCancelled(request_id=f"q{n % 3}", reason="opted out", **c),
    ]
    return made[kind]


route_events = st.lists(
    st.tuples(st.integers(0, 8), st.sampled_from(DOCS), st.sampled_from(CHIPS), st.booleans()),
    max_size=40).map(lambda xs: [_route_event(*x, n) for n, x in enumerate(xs)])


@settings(max_examples=200, deadline=None)
@given(events=route_events)
def test_doctor_rows_agree_with_the_balancer(events: list[rt.AnyRouteEvent]) -> None:
    state = BalancerState()
    rows: dict[str, DoctorRow] = {}
    for seq, event in enumerate(events, 1):
        evolve(state, event)
        rows[event.doctor_id] = doctor_step(rows.get(event.doctor_id), seq, event)
    for doctor_id, row in rows.items():
        doctor = state.doctors.get(doctor_id)
        assert (row.chip_id, row.consented, row.opted_out, row.quarantined_until) == (
            doctor.chip_id, doctor.consented, doctor.opted_out, doctor.quarantined_until)
        assert row.opted_out == (row.opted_out_since is not None)
        assert "987654321" not in repr(row)


@settings(max_examples=100, deadline=None)
@given(events=route_events)
def test_a_replayed_batch_changes_nothing(events: list[rt.AnyRouteEvent]) -> None:
    batch = [Envelope(seq, e) for seq, e in enumerate(events, 1)]
    once = KeyedFold(DOCTORS, doctor_step, lambda e: e.doctor_id, {})
    for item in batch:
        once.feed(item)
    twice = KeyedFold(DOCTORS, doctor_step, lambda e: e.doctor_id, dict(once.rows))
    for item in batch:
        twice.feed(item)
    assert twice.rows == once.rows and not twice.changed


def test_a_repeated_opt_out_keeps_the_first_since_and_source() -> None:
    first = _route_event(2, "d1", "a", True, 1)
    again = _route_event(2, "d1", "a", False, 2)
    row = doctor_step(doctor_step(None, 1, first), 2, again)
    assert (row.opted_out_since, row.opted_out_source) == (first.occurred_at, "keyword")
    back = doctor_step(row, 3, _route_event(3, "d1", "a", False, 3))
    assert (back.opted_out, back.opted_out_since, back.consented) == (False, None, True)


def test_a_backlog_entry_is_settled_once() -> None:
    queued = backlog_step(None, 1, _route_event(6, "d1", "a", True, 0))
    assert queued is not None and queued.status == "queued"
    served = backlog_step(queued, 2, _route_event(7, "d1", "b", True, 3))
    assert served is not None and (served.status, served.chip_id) == ("served", "b")
    assert backlog_step(served, 3, _route_event(8, "d1", "b", True, 6)) is served
    assert backlog_step(None, 4, _route_event(7, "d1", "b", True, 9)) is None  # never queued
    assert backlog_step(queued, 5, _route_event(6, "d1", "a", True, 12)) is queued


def test_attempt_outcomes_and_receipts() -> None:
    c: dict[str, Any] = {"chip_id": "a", "attempt_id": "t1", "occurred_at": T0}
    row = attempt_step(None, 1, msg.SendAttempted(event_id="1", doctor_id="d1", kind="reply",
                                                  consented=True, **c))
    assert row is not None and row.outcome is None
    row = attempt_step(row, 2, msg.SendUnknown(event_id="2", reason="crashed", **c))
    assert row is not None and (row.outcome, row.outcome_reason) == ("unknown", "crashed")
    row = attempt_step(row, 3, msg.Delivered(event_id="3", message_id="w", **c))
    assert row is not None and row.delivered_at == T0 and row.last_seq == 3
    orphan = msg.SendFailed(event_id="4", reason="no", **{**c, "attempt_id": "gone"})
    assert attempt_step(None, 4, orphan) is None  # its attempt aged out of MSG_EVENTS
    assert ATTEMPTS.record(row)[0] == "t1" and ATTEMPTS.columns[-1] == "last_seq"
