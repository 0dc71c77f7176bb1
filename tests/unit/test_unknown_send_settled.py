"""A settled unknown send reads as dispatched or failed to the balancer and the read model."""

from __future__ import annotations

from datetime import UTC, datetime

from julia_chips.balancer.model.state import BalancerState, evolve
from julia_chips.contract import messages as msg
from julia_chips.contract.route import ReplyStatus
from julia_chips.projections.rows.doctor import attempt_step

AT = datetime(2026, 11, 27, 12, tzinfo=UTC)
COMMON = {"chip_id": "c1", "attempt_id": "a1", "occurred_at": AT}
LEDGER = [
    msg.SendAttempted(event_id="a1:attempted", doctor_id="d1", kind="reply", consented=True,
                      **COMMON),
    msg.SendUnknown(event_id="a1:unknown", reason="gateway error Timeout", **COMMON)]


def _settled(verdict: msg.Verdict) -> msg.UnknownSendSettled:
    return msg.UnknownSendSettled(event_id="a1:settled", verdict=verdict, note="checked",
                                  **COMMON)


def test_the_balancer_counts_a_settled_send_by_its_verdict() -> None:
    for verdict, status in ((msg.Verdict.DELIVERED, ReplyStatus.DISPATCHED),
                            (msg.Verdict.NOT_SENT, ReplyStatus.FAILED)):
        state = BalancerState()
        for event in [*LEDGER, _settled(verdict)]:
            state = evolve(state, event)
        assert state.attempts["a1"].outcome is status


def test_the_attempt_row_takes_the_verdict_and_its_note() -> None:
    row = None
    for seq, event in enumerate([*LEDGER, _settled(msg.Verdict.DELIVERED)], start=1):
        row = attempt_step(row, seq, event)
    assert row is not None
    assert (row.outcome, row.outcome_reason, row.last_seq) == ("dispatched", "checked", 3)
