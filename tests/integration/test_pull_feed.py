"""`GatheringPullFeed`, against a real JetStream: every message once and in order;
the first after a quiet spell handed over at once and the next ones gathered into batches;
a backlog taken in full batches; a quiet feed that does not poll."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from julia_chips.jetstream.pull_feed import EXPIRES, GatheringPullFeed


class Trail:
    """What a feed handed over, and when, and the pull requests it sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.times: list[float] = []
        self.requests: list[dict[str, object]] = []

    def take(self, msg: Msg) -> None:
        self.bodies.append(msg.data)
        self.times.append(time.monotonic())

    def bursts(self) -> int:
        """Runs of hand-overs less than 2 ms apart: one per request answered in one go."""
        return 1 + sum(b - a > 0.002 for a, b in zip(self.times, self.times[1:], strict=False))

    async def until(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.bodies) < count:  # noqa: ASYNC110 (polling real I/O)
                await asyncio.sleep(0.005)


@asynccontextmanager
async def lingering_feed(nc: NATS, js: JetStreamContext, linger: float, window: int = 64,
                         before: Callable[[str], Awaitable[None]] | None = None
                         ) -> AsyncIterator[tuple[Trail, str]]:
    """A fresh stream and durable, and a feed on them; `before(subject)` runs before it starts."""
    name = "FEED" + secrets.token_hex(4).upper()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    await js.add_consumer(name, ConsumerConfig(durable_name="reader",
                                               ack_policy=AckPolicy.NONE))
    trail = Trail()

    async def asked(msg: Msg) -> None:
        trail.requests.append(json.loads(msg.data))

    watch = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{name}.reader", cb=asked)
    if before is not None:
        await before(f"{name}.x")
    feed = GatheringPullFeed(nc, name, "reader", trail.take, window=window, linger=linger)
    await feed.start()
    try:
        yield trail, f"{name}.x"
    finally:
        await feed.stop()
        await watch.unsubscribe()
        await js.delete_stream(name)


async def test_a_trickle_comes_once_in_order_in_a_few_batches(nc: NATS, js: JetStreamContext
                                                              ) -> None:
    async with lingering_feed(nc, js, linger=0.1) as (trail, subject):
        sent = [f"m{n}".encode() for n in range(100)]
        for body in sent:
            await js.publish(subject, body)
            await asyncio.sleep(0.005)  # 100 messages over half a second or more
        await trail.until(100)
        await asyncio.sleep(0.3)
        assert trail.bodies == sent
        # a waiting request would hand each over on its own: about 100 bursts
        assert trail.bursts() <= 25, trail.bursts()


async def test_after_a_quiet_spell_the_first_comes_at_once_the_next_ones_gather(
        nc: NATS, js: JetStreamContext) -> None:
    async with lingering_feed(nc, js, linger=1.0) as (trail, subject):
        await asyncio.sleep(0.2)
        sent_at = time.monotonic()
        await js.publish(subject, b"first")
        await trail.until(1)
        assert trail.times[0] - sent_at < 0.5
        for n in range(3):
            await js.publish(subject, f"next {n}".encode())
        await trail.until(4, timeout=5)
        assert trail.bodies == [b"first", b"next 0", b"next 1", b"next 2"]
        assert trail.times[1] - trail.times[0] >= 0.8  # they waited for the linger
        assert trail.times[3] - trail.times[1] < 0.1  # and came together


async def test_a_backlog_is_taken_in_full_batches(nc: NATS, js: JetStreamContext) -> None:
    sent = [f"b{n}".encode() for n in range(1000)]

    async def backlog(subject: str) -> None:
        for body in sent:
            await js.publish(subject, body)

    async with lingering_feed(nc, js, linger=0.02, window=100, before=backlog) as (trail, _):
        await trail.until(1000)
        await asyncio.sleep(0.1)
        assert trail.bodies == sent
        batches = [r for r in trail.requests if r.get("no_wait")]
        assert len(batches) <= 12, trail.requests
        assert all(r["batch"] == 100 for r in batches)


async def test_a_quiet_feed_waits_rather_than_polls(nc: NATS, js: JetStreamContext) -> None:
    async with lingering_feed(nc, js, linger=0.01) as (trail, _):
        await asyncio.sleep(1.5)
        # one request waiting for a message, renewed as it expires (each second): not a
        # poll every 10 ms
        waiting_for_one = {"batch": 1, "expires": int(EXPIRES * 1e9)}
        assert trail.requests[:2] == [waiting_for_one, waiting_for_one], trail.requests
        assert len(trail.requests) == 2, trail.requests
        assert trail.bodies == []
