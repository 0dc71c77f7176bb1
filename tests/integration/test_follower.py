"""The one follower against a real JetStream: when it is caught up (an empty stream, a start
time after every message: `test_balancer_replay.py`; an `apply` that raises), and what
becomes of a message it cannot decode (skipped, logged without its body, counted)."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import msgspec
import pytest
from nats.js.client import JetStreamContext
from prometheus_client import REGISTRY

from julia_chips.contract.fleet import AnyFleetEvent
from julia_chips.contract.subjects import FLEET_BRAKE, Stream
from julia_chips.jetstream.follower import Follower, body, replay
from tests.integration.test_event_stream import engaged

_FLEET = msgspec.json.Decoder(AnyFleetEvent)
SECRET = b'{"phone": "+5511912345678"}'  # a foreign body: never in a log line


def fleet_event(data: bytes) -> AnyFleetEvent:
    return cast(AnyFleetEvent, _FLEET.decode(data))


async def publish_brake(js: JetStreamContext, n: int) -> list[int]:
    return [(await js.publish(FLEET_BRAKE, msgspec.json.encode(engaged(k)))).seq
            for k in range(n)]


def undecodable(reader: str) -> float:
    return REGISTRY.get_sample_value("julia_undecodable_messages_total",
                                     {"reader": reader, "stream": "FLEET_EVENTS"}) or 0.0


async def test_an_apply_that_raises_on_the_last_message_still_catches_up(
        js: JetStreamContext) -> None:
    seqs = await publish_brake(js, 3)
    tried: list[int] = []

    def apply(seq: int, _event: AnyFleetEvent) -> None:
        tried.append(seq)
        raise ValueError("a fold's bug")

    follower = await asyncio.wait_for(
        replay(js, Stream.FLEET_EVENTS, "fleet.evt.>", body(fleet_event), apply,
               reader="test"), timeout=10)
    assert tried == seqs
    assert (follower.last_seq, follower.seen) == (seqs[-1], 3)


async def test_an_undecodable_message_is_skipped_logged_without_its_body_and_counted(
        js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    [good] = await publish_brake(js, 1)
    bad = (await js.publish(FLEET_BRAKE, SECRET)).seq
    [later] = await publish_brake(js, 1)
    before = undecodable("skip-test")
    folded: list[int] = []
    with caplog.at_level(logging.WARNING, logger="julia_chips.jetstream.follower"):
        follower = await asyncio.wait_for(
            replay(js, Stream.FLEET_EVENTS, "fleet.evt.>", body(fleet_event),
                   lambda seq, _e: folded.append(seq), reader="skip-test"), timeout=10)
    assert folded == [good, later]
    assert (follower.last_seq, follower.seen) == (later, 3)
    assert undecodable("skip-test") == before + 1
    [line] = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert f"sequence {bad} on {FLEET_BRAKE}" in line and "skip-test" in line
    assert "+5511912345678" not in caplog.text


async def test_a_live_follower_goes_on_after_catching_up(js: JetStreamContext) -> None:
    seqs = await publish_brake(js, 2)
    folded: asyncio.Queue[int] = asyncio.Queue()
    follower = Follower(js, Stream.FLEET_EVENTS, "fleet.evt.>", body(fleet_event),
                        lambda seq, _e: folded.put_nowait(seq), reader="test")
    await asyncio.wait_for(follower.start(), timeout=10)
    try:
        assert [folded.get_nowait() for _ in seqs] == seqs and follower.caught_up.is_set()
        [later] = await publish_brake(js, 1)
        assert await asyncio.wait_for(folded.get(), timeout=10) == later
    finally:
        await follower.stop()


async def test_a_live_follower_of_an_empty_stream_is_caught_up_at_once(
        js: JetStreamContext) -> None:
    follower = Follower(js, Stream.FLEET_EVENTS, "fleet.evt.>", body(fleet_event),
                        lambda _seq, _e: None, reader="test")
    await asyncio.wait_for(follower.start(), timeout=10)
    await follower.stop()
    assert (follower.last_seq, follower.seen) == (0, 0)


async def test_a_follower_starts_after_a_sequence_and_at_the_end_with_nothing_to_replay(
        js: JetStreamContext) -> None:
    """A dashboard client resuming after its last id, or starting at the stream's end."""
    seqs = await publish_brake(js, 3)
    folded: asyncio.Queue[int] = asyncio.Queue()
    resumed = Follower(js, Stream.FLEET_EVENTS, "fleet.evt.>", body(fleet_event),
                       lambda seq, _e: folded.put_nowait(seq), reader="test",
                       after_seq=seqs[0])
    at_end = Follower(js, Stream.FLEET_EVENTS, "fleet.evt.>", body(fleet_event),
                      lambda seq, _e: folded.put_nowait(-seq), reader="test",
                      after_seq=seqs[-1])
    await asyncio.wait_for(resumed.start(), timeout=10)
    await asyncio.wait_for(at_end.start(), timeout=10)  # caught up at once: nothing after
    try:
        assert sorted(folded.get_nowait() for _ in seqs[1:]) == seqs[1:]
        assert folded.empty() and at_end.seen == 0
        [later] = await publish_brake(js, 1)
        got = {await asyncio.wait_for(folded.get(), timeout=10) for _ in range(2)}
        assert got == {later, -later}
    finally:
        await resumed.stop()
        await at_end.stop()
