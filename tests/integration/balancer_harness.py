"""Balancers in the test process, chips seeded straight into CHIP_EVENTS, stream readers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.balancer.dispatch import WhatsAppSender
from julia_chips.balancer.leader import BalancerSettings
from julia_chips.balancer.runner import BalancerRunner
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.clock import Clock, FixedClock
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from tests.conftest import LEASE_TTL
from tests.fakes import FakeSender
from tests.unit.balancer_builders import NOW, chip_history

SETTINGS = BalancerSettings(max_active=6, lease_ttl=LEASE_TTL, ack_wait=3.0, max_deliver=5,
                            backlog_every=0.2)


@asynccontextmanager
async def running_balancer(nc: NATS, clock: Clock | None = None,
                           settings: BalancerSettings = SETTINGS,
                           sender: WhatsAppSender | None = None,
                           holder: str | None = None) -> AsyncIterator[BalancerRunner]:
    runner = BalancerRunner(nc, clock or FixedClock(NOW), settings, sender or FakeSender(),
                            holder)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.leading.wait(), 20)
    try:
        yield runner
    finally:
        runner.stop()
        await task


async def seed_chip(js: JetStreamContext, chip_id: str, status: Status, cap: int,
                    phone_number: str | None = None) -> None:
    """The chip's history up to `status`; `phone_number` in its `Activated` when given."""
    log = JetStreamChipEventLog(js)
    await log.append(chip_id, chip_history(chip_id, status, cap, phone_number=phone_number),
                     await log.last_seq(chip_id))


_NO_DIRECT_GET = (Stream.DEAD_LETTER, Stream.GATEWAY_IN)


async def read_stream(js: JetStreamContext, stream: Stream) -> list[bytes]:
    try:
        last = (await js.stream_info(stream)).state.last_seq
    except NotFoundError:
        return []
    out = []
    for seq in range(1, last + 1):
        try:
            m = await js.get_msg(stream, seq, direct=stream not in _NO_DIRECT_GET)
        except NotFoundError:
            continue
        assert m.data is not None
        out.append(m.data)
    return out


async def route_events(js: JetStreamContext) -> list[rt.AnyRouteEvent]:
    return [rt.decode_route_event(d) for d in await read_stream(js, Stream.ROUTE_EVENTS)]


async def ledger(js: JetStreamContext) -> list[msg.AnyMessageEvent]:
    return [msg.decode_message_event(d) for d in await read_stream(js, Stream.MSG_EVENTS)]


async def wait_until(check: object, timeout: float = 10.0) -> None:
    """Poll an async predicate until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")
