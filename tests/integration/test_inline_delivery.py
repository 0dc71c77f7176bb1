"""`deliver_inline` replaces nats-py's queue on a subscription: the function must see exactly
what a callback subscription sees, in the same order, and nothing of nats-py's flow control
(pending limits, slow-consumer drops) may trip because the queue is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sized

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from julia_chips.jetstream.inline_delivery import deliver_inline, subscribe_inline

Seen = tuple[str, str, bytes, dict[str, str] | None]


def seen(msg: Msg) -> Seen:
    return msg.subject, msg.reply, msg.data, msg.headers


async def until(count: int, got: Sized) -> None:
    async with asyncio.timeout(10):
        while len(got) < count:  # noqa: ASYNC110 (polling real I/O)
            await asyncio.sleep(0.01)


async def test_the_function_sees_what_a_callback_sees_in_the_same_order(nc: NATS) -> None:
    by_callback: list[Seen] = []
    inline: list[Seen] = []

    async def callback(msg: Msg) -> None:
        by_callback.append(seen(msg))

    await nc.subscribe("inline.>", cb=callback)
    deliver_inline(await nc.subscribe("inline.>", cb=callback), lambda m: inline.append(seen(m)))
    for n in range(3000):
        headers = {"Nats-Msg-Id": f"m{n}", "Julia-Note": "olá"} if n % 2 else None
        await nc.publish(f"inline.{n % 7}", f"body {n}".encode(), reply=f"_INBOX.r.{n}",
                         headers=headers)
    await until(3000, inline)
    await until(3000, by_callback)
    assert inline == by_callback


async def test_no_pending_limit_trips_however_much_arrives(nc: NATS) -> None:
    """nats-py counts bytes as queued when it hands them over; past the limit it would drop
    messages as a slow consumer, and with no task to count them off that would be all."""
    got: list[Seen] = []
    sub = await nc.subscribe("inline.many", cb=_unused, pending_bytes_limit=2_000,
                             pending_msgs_limit=10)
    deliver_inline(sub, lambda m: got.append(seen(m)))
    for n in range(2000):
        await nc.publish("inline.many", b"x" * 100 + str(n).encode())
    await until(2000, got)
    assert [data[100:] for _, _, data, _ in got] == [str(n).encode() for n in range(2000)]
    assert sub.pending_bytes <= 0 and sub.pending_msgs == 0


async def test_a_failing_function_is_logged_and_reading_goes_on(
        nc: NATS, caplog: pytest.LogCaptureFixture) -> None:
    got: list[bytes] = []

    def handle(msg: Msg) -> None:
        if msg.data == b"2":
            raise ValueError("boom")
        got.append(msg.data)

    await subscribe_inline(nc, "inline.fail", handle)
    with caplog.at_level(logging.ERROR):
        for n in range(5):
            await nc.publish("inline.fail", str(n).encode())
        async with asyncio.timeout(5):
            while len(got) < 4:  # noqa: ASYNC110 (polling real I/O)
                await asyncio.sleep(0.01)
    assert got == [b"0", b"1", b"3", b"4"] and nc.is_connected
    assert "not handled" in caplog.text and "boom" in caplog.text


async def test_unsubscribe_and_drain_end_it(nc: NATS) -> None:
    got: list[bytes] = []
    sub = await subscribe_inline(nc, "inline.end", lambda m: got.append(m.data))
    await nc.publish("inline.end", b"before")
    await nc.flush()
    await until(1, got)
    await sub.unsubscribe()
    await nc.publish("inline.end", b"after")
    await nc.flush()
    await asyncio.sleep(0.1)
    assert got == [b"before"]
    other = await subscribe_inline(nc, "inline.drain", lambda m: got.append(m.data))
    async with asyncio.timeout(5):
        await other.drain()  # type: ignore[no-untyped-call]


async def _unused(msg: Msg) -> None:
    raise AssertionError("the callback must not run once delivery is inline")
