"""The followers' replay (`jetstream/follower.py` `replay`) against a real JetStream: it returns
once caught up, including when no stored message falls after `since` (a fleet idle for longer
than the ledger's horizon), which left a new leader rebuilding forever; and the ledger's age."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.follower import Apply, Decode, replay
from julia_chips.jetstream.streams import ensure_streams


def kept(seen: list[Msg]) -> tuple[Decode[Msg], Apply[Msg]]:
    """A decode and an apply that keep each message as it came."""
    def keep(_seq: int, m: Msg) -> None:
        seen.append(m)
    return (lambda m: m), keep


async def publish_ledger(js: JetStreamContext, n: int) -> None:
    for k in range(n):
        await js.publish(f"msg.evt.chip-{k}", b"{}")


async def test_replay_since_after_every_message_returns_at_once(js: JetStreamContext) -> None:
    await publish_ledger(js, 3)
    last = await js.get_last_msg(str(Stream.MSG_EVENTS), "msg.evt.>")
    assert last.time is not None  # the server's own clock, not ours
    seen: list[Msg] = []
    await asyncio.wait_for(replay(js, Stream.MSG_EVENTS, "msg.evt.>", *kept(seen), reader="test",
                                  since=last.time + timedelta(seconds=1)), timeout=10)
    assert seen == []


async def test_replay_since_before_the_messages_applies_them_all(js: JetStreamContext) -> None:
    await publish_ledger(js, 3)
    first = await js.get_msg(str(Stream.MSG_EVENTS), 1)
    assert first.time is not None
    seen: list[Msg] = []
    await asyncio.wait_for(replay(js, Stream.MSG_EVENTS, "msg.evt.>", *kept(seen), reader="test",
                                  since=first.time - timedelta(seconds=1)), timeout=10)
    assert [m.subject for m in seen] == [f"msg.evt.chip-{k}" for k in range(3)]


async def test_replay_of_an_empty_stream_returns(js: JetStreamContext) -> None:
    seen: list[Msg] = []
    await asyncio.wait_for(replay(js, Stream.ROUTE_EVENTS, "route.evt.>", *kept(seen), reader="test"),
                           timeout=10)
    assert seen == []


async def test_the_ledger_keeps_sends_as_long_as_configured(js: JetStreamContext) -> None:
    """JULIA_LEDGER_MAX_AGE_DAYS reaches MSG_EVENTS, also when the stream exists already."""
    await ensure_streams(js, ledger_max_age_days=30)
    info = await js.stream_info(str(Stream.MSG_EVENTS))
    assert info.config.max_age == 30 * 86_400
