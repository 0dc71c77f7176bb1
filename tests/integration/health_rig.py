"""A running health monitor over real NATS, and signal builders for the integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from nats.aio.client import Client as NATS

from julia_chips.clock import Clock
from julia_chips.contract.observations import ConnectionUpdate
from julia_chips.health.model.brake import BrakePolicy
from julia_chips.health.monitor import HealthMonitor, HealthMonitorSettings

FAST = HealthMonitorSettings(flush_interval=0.05, tick=0.02, fetch_batch=500,
                             brake=BrakePolicy(threshold=3, window=timedelta(hours=1),
                                               cool_off=timedelta(hours=6)))


@asynccontextmanager
async def monitoring(nc: NATS, clock: Clock, settings: HealthMonitorSettings = FAST
                     ) -> AsyncIterator[HealthMonitor]:
    monitor = HealthMonitor(nc, clock, settings)
    task = asyncio.create_task(monitor.run())
    async with asyncio.timeout(5):
        await monitor.feed.caught_up.wait()
    try:
        yield monitor
    finally:
        monitor.stop()
        await task


def connection(instance: str, state: str, code: int | None, clock: Clock) -> ConnectionUpdate:
    return ConnectionUpdate(instance=instance, state=state,  # type: ignore[arg-type]
                            status_reason=code, observed_at=clock.now())


async def until(predicate: object, timeout: float = 5.0) -> None:
    """Poll an async predicate (real I/O on the other side: nothing to await on directly)."""
    async with asyncio.timeout(timeout):
        while not await predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.02)
