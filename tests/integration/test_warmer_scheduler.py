"""The warmer scheduler closes each warming chip's day once, at São Paulo midnight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.clock import AcceleratedClock, Clock, FixedClock
from julia_chips.contract.subjects import Stream
from julia_chips.warmer.scheduler import WarmerScheduler
from tests.conftest import new_chip_id
from tests.integration.ingress_fixtures import until_stored
from tests.integration.warm_fleet import (
    FIRST_MIDNIGHT,
    MORNING,
    closed_days,
    wait_days_closed,
    warming_chips,
)
from tests.integration.workers import running_worker


@asynccontextmanager
async def scheduling(nc: NATS, clock: Clock, **options: float) -> AsyncIterator[WarmerScheduler]:
    scheduler = WarmerScheduler(nc, clock, tick=0.02, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        scheduler.stop()
        await task


async def test_two_schedulers_close_each_chip_and_day_exactly_once(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    chips = [new_chip_id() for _ in range(8)]
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), chips)
        async with scheduling(nc, clock) as a, scheduling(nc, clock):
            await asyncio.sleep(0.1)
            assert set(a.warming) == set(chips)  # learnt from CHIP_EVENTS alone
            assert await closed_days(js, chips[0]) == {}  # nothing before midnight
            for day in (1, 2, 3):
                clock.set(FIRST_MIDNIGHT + timedelta(days=day - 1, seconds=1))
                await wait_days_closed(js, chips, day)
                await asyncio.sleep(0.1)  # give a duplicate every chance to land
    for chip in chips:
        assert await closed_days(js, chip) == {1: 1, 2: 1, 3: 1}


async def test_a_scheduler_restarted_in_the_middle_of_midnight_closes_once(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    chips = [new_chip_id() for _ in range(6)]
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), chips)
    # Midnight passes while no worker runs: the first scheduler's closes are stored, then it
    # dies before any answer; a fresh one starts, knows nothing, and sends them again.
    clock.set(FIRST_MIDNIGHT + timedelta(seconds=1))
    first = WarmerScheduler(nc, clock, tick=0.02)
    task = asyncio.create_task(first.run())
    await until_stored(js, Stream.CHIP_CMDS, len(chips))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with scheduling(nc, clock) as second:
        await until_stored(js, Stream.CHIP_CMDS, 2 * len(chips))
        assert len(second.warming) == len(chips)
        async with running_worker(nc, clock):
            await wait_days_closed(js, chips, 1)
            await asyncio.sleep(0.2)
    for chip in chips:
        assert await closed_days(js, chip) == {1: 1}


async def test_an_accelerated_clock_runs_warm_days_in_a_fraction_of_a_second(
        nc: NATS, js: JetStreamContext) -> None:
    # A day every 0.4 real seconds; starting at 23:00 local, midnight comes at once.
    clock = AcceleratedClock(FIRST_MIDNIGHT - timedelta(hours=1), speed=86_400 / 0.4)
    chips = [new_chip_id() for _ in range(3)]
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), chips)
        async with scheduling(nc, clock):
            await wait_days_closed(js, chips, 3, timeout=5)
    for chip in chips:
        days = await closed_days(js, chip)
        assert all(n == 1 for n in days.values()) and {1, 2, 3} <= set(days)
