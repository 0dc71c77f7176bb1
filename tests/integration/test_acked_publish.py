"""`AckedPublisher` writes its HPUB itself: JetStream must store exactly what nats-py's own
`publish` would have stored, headers included, and refuse what it would refuse."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.errors import BadSubjectError, MaxPayloadError
from nats.js.api import Header, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from julia_chips.jetstream.acked_publish import SWEEP_EVERY, AckedPublisher

HEADERS = {"Julia-Event-Type": "SendAttempted", "Julia-Event-Version": "1",
           Header.MSG_ID: "req-1:0", "Julia-Note": " two\r\nlines "}


async def test_stored_message_equals_what_nats_py_publish_stores(
        nc: NATS, js: JetStreamContext) -> None:
    await js.add_stream(StreamConfig(name="ACKED", subjects=["acked.>"]))
    body = '{"doctor":"d1","text":"olá"}'.encode()
    ours = await AckedPublisher(nc).publish("acked.ours", body, HEADERS)
    theirs = await js.publish("acked.theirs", body, headers=HEADERS)
    a, b = (await js.get_msg("ACKED", ours.seq), await js.get_msg("ACKED", theirs.seq))
    assert (a.data, a.headers) == (b.data, b.headers)
    assert a.headers is not None and a.headers["Julia-Note"] == "two  lines"


async def test_it_refuses_what_nats_py_refuses(nc: NATS, js: JetStreamContext) -> None:
    await js.add_stream(StreamConfig(name="ACKED", subjects=["acked.>"]))
    publisher = AckedPublisher(nc)
    with pytest.raises(BadSubjectError):
        await publisher.publish("acked.two words", b"x", HEADERS)
    with pytest.raises(MaxPayloadError):
        await publisher.publish("acked.big", b"x" * (nc.max_payload + 1), HEADERS)
    await publisher.publish("acked.once", b"x", {Header.MSG_ID: "m"})
    dup = await publisher.publish("acked.once", b"x", {Header.MSG_ID: "m"})
    assert dup.duplicate
    with pytest.raises(APIError) as wrong:
        await publisher.publish("acked.once", b"y",
                                {Header.EXPECTED_LAST_SUBJECT_SEQUENCE: "99"})
    assert wrong.value.err_code == 10071


async def test_an_ack_that_never_comes_fails_the_publish_after_its_timeout(nc: NATS) -> None:
    silent = await nc.subscribe("acked.silent")  # takes the message, never answers
    publisher = AckedPublisher(nc)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await publisher.publish("acked.silent", b"x", {Header.MSG_ID: "m"}, timeout=0.3)
    waited = asyncio.get_running_loop().time() - started
    assert 0.3 <= waited < 0.3 + SWEEP_EVERY + 0.2
    await silent.unsubscribe()


async def test_submitted_without_awaiting_they_are_stored_in_order(
        nc: NATS, js: JetStreamContext) -> None:
    """`submit_nowait` is for handlers on nats-py's reader: many sent in one go, no await
    between them, each acked in turn; before `open` it refuses rather than lose one."""
    await js.add_stream(StreamConfig(name="ACKED", subjects=["acked.>"]))
    publisher = AckedPublisher(nc)
    with pytest.raises(RuntimeError):
        publisher.submit_nowait("acked.early", b"x", {})
    await publisher.open()
    acks = [publisher.submit_nowait(f"acked.n{n % 3}", str(n).encode(),
                                    {Header.MSG_ID: f"n{n}"}) for n in range(500)]
    stored = await asyncio.gather(*acks)
    assert [ack.seq for ack in stored] == list(range(1, 501))
    assert [(await js.get_msg("ACKED", n + 1)).data for n in (0, 249, 499)] == [
        b"0", b"249", b"499"]
