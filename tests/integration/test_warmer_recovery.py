"""The warmer scheduler outlives NATS errors other than a timeout: with the command stream
gone every close meets "no responders"; once it is back, the days close."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.warmer.scheduler import WarmerScheduler
from tests.conftest import LEASE_TTL, new_chip_id
from tests.integration.warm_fleet import (
    FIRST_MIDNIGHT,
    MORNING,
    closed_days,
    wait_days_closed,
    warming_chips,
)
from tests.integration.workers import running_worker


async def test_the_scheduler_outlives_a_missing_command_stream_and_closes_days_after(
        nc: NATS, js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    clock = FixedClock(MORNING)
    chips = [new_chip_id() for _ in range(3)]
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), chips)
    await js.delete_stream(Stream.CHIP_CMDS)
    clock.set(FIRST_MIDNIGHT + timedelta(seconds=1))
    caplog.set_level(logging.WARNING, logger="julia_chips.warmer.scheduler")
    scheduler = WarmerScheduler(nc, clock, tick=0.02, resend_after=0.2)
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(10):
            while caplog.text.count("NoStreamResponseError") < 2 * len(chips):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # each close failed, and was tried again
        assert not task.done()
        await ensure_streams(js, replicas=1, lease_ttl=LEASE_TTL)
        async with running_worker(nc, clock):
            await wait_days_closed(js, chips, 1)
    finally:
        scheduler.stop()
        await task
    for chip in chips:
        assert await closed_days(js, chip) == {1: 1}
