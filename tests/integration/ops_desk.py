"""An operations desk answering in the test process, and a way to ask it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NATS

from julia_chips.clock import FixedClock
from julia_chips.contract.subjects import OpsSubject
from julia_chips.operations.desk import OperationsDesk

CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))
R = TypeVar("R")


@asynccontextmanager
async def running_desk(nc: NATS) -> AsyncIterator[OperationsDesk]:
    desk = OperationsDesk(nc, CLOCK)
    task = asyncio.create_task(desk.run())
    await asyncio.sleep(0.05)  # subscribed
    await nc.flush()
    try:
        yield desk
    finally:
        desk.stop()
        await task


async def ask(nc: NATS, subject: OpsSubject, body: dict[str, Any] | bytes, reply: type[R],
              timeout: float = 10.0) -> R:
    """One operator request over NATS, its answer decoded as `reply`."""
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    answer = await nc.request(str(subject), data, timeout=timeout)
    return msgspec.json.decode(answer.data, type=reply)
