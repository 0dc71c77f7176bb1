"""Sends left `unknown` are listed for review and settled by an operator, as ledger events."""

from __future__ import annotations

from datetime import timedelta

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.route_log import append_message_event
from julia_chips.contract import messages as msg
from julia_chips.contract import operations as ops
from julia_chips.contract.subjects import OpsSubject, Stream, message_events
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.follower import body, replay
from tests.integration.ops_desk import CLOCK, ask, running_desk

LIST, SETTLE = OpsSubject.UNKNOWN_SENDS_LIST, OpsSubject.UNKNOWN_SEND_SETTLE
T0 = CLOCK.now() - timedelta(hours=2)


async def _ledger(nc: NATS) -> None:
    """Chip `c1`: `a1` unknown, `a2` dispatched; chip `c2`: `b1` unknown, older than `a1`."""
    publisher = AckedPublisher(nc)
    for chip, attempt, at, unknown in (("c2", "b1", T0, True), ("c1", "a1", T0 + timedelta(
            minutes=5), True), ("c1", "a2", T0 + timedelta(minutes=6), False)):
        common = {"chip_id": chip, "attempt_id": attempt, "occurred_at": at}
        await append_message_event(publisher, msg.SendAttempted(
            event_id=f"{attempt}:attempted", doctor_id=f"d-{attempt}", kind="reply",
            consented=True, **common))
        outcome: msg.MessageEvent = (
            msg.SendUnknown(event_id=f"{attempt}:unknown", reason="gateway error Timeout",
                            **common) if unknown else
            msg.SendDispatched(event_id=f"{attempt}:dispatched", message_id="m", **common))
        await append_message_event(publisher, outcome)


async def _stored(js: JetStreamContext, chip: str) -> list[msg.AnyMessageEvent]:
    found: list[msg.AnyMessageEvent] = []
    await replay(js, Stream.MSG_EVENTS, message_events(chip), body(msg.decode_message_event),
                 lambda _seq, event: found.append(event), reader="test")
    return found


async def test_the_queue_lists_unknown_sends_oldest_first(nc: NATS) -> None:
    await _ledger(nc)
    async with running_desk(nc):
        fleet = await ask(nc, LIST, {}, ops.UnknownSendsListed)
        one_chip = await ask(nc, LIST, {"chip_id": "c1"}, ops.UnknownSendsListed)
    assert [(s.chip_id, s.attempt_id, s.doctor_id) for s in fleet.sends] == [
        ("c2", "b1", "d-b1"), ("c1", "a1", "d-a1")]
    assert fleet.sends[0].reason == "gateway error Timeout"
    assert [s.attempt_id for s in one_chip.sends] == ["a1"]


async def test_settling_appends_a_ledger_event_and_takes_the_send_off_the_queue(
        nc: NATS, js: JetStreamContext) -> None:
    await _ledger(nc)
    async with running_desk(nc):
        settled = await ask(nc, SETTLE, {"chip_id": "c1", "attempt_id": "a1",
                                         "verdict": "not_sent", "note": "not on the phone"},
                            ops.UnknownSendSettledReply)
        again = await ask(nc, SETTLE, {"chip_id": "c1", "attempt_id": "a1",
                                       "verdict": "not_sent"}, ops.UnknownSendSettledReply)
        other = await ask(nc, SETTLE, {"chip_id": "c1", "attempt_id": "a1",
                                       "verdict": "delivered"}, ops.OpsReply)
        left = await ask(nc, LIST, {}, ops.UnknownSendsListed)
    assert (settled.ok, settled.event_id, settled.duplicate) == (True, "a1:settled", False)
    assert (again.ok, again.duplicate) == (True, True)
    assert other.ok is False and other.error == "verdict: already settled as not_sent"
    assert [s.attempt_id for s in left.sends] == ["b1"]
    last = (await _stored(js, "c1"))[-1]
    assert last == msg.UnknownSendSettled(
        event_id="a1:settled", chip_id="c1", attempt_id="a1", occurred_at=CLOCK.now(),
        verdict=msg.Verdict.NOT_SENT, note="not on the phone")


async def test_only_an_unknown_send_can_be_settled(nc: NATS) -> None:
    await _ledger(nc)
    async with running_desk(nc):
        dispatched = await ask(nc, SETTLE, {"chip_id": "c1", "attempt_id": "a2",
                                            "verdict": "delivered"}, ops.OpsReply)
        elsewhere = await ask(nc, SETTLE, {"chip_id": "c2", "attempt_id": "a1",
                                           "verdict": "delivered"}, ops.OpsReply)
        verdict = await ask(nc, SETTLE, {"chip_id": "c1", "attempt_id": "a1",
                                         "verdict": "maybe"}, ops.OpsReply)
        wildcard = await ask(nc, LIST, {"chip_id": "*"}, ops.OpsReply)
    assert dispatched.error == "attempt_id: 'a2' is SendDispatched, not unknown"
    assert elsewhere.error == "attempt_id: no send 'a1' on chip 'c2'"
    assert verdict.error is not None and "$.verdict" in verdict.error
    assert wildcard.error is not None and "$.chip_id" in wildcard.error
