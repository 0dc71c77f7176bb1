"""One chip whose processing raises does not stop a fleet-wide loop acting for the others.

Each test stores, for one chip, an event this version cannot fold without raising (as another
writer or a bug could have stored it), then checks that the loop still acts for a second chip,
and that the failure was logged with the chip and counted by part.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from prometheus_client import REGISTRY

from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.ingest.observation_log import publish_observation
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.warmer.scheduler import WarmerScheduler
from tests.conftest import new_chip_id
from tests.integration.health_rig import connection, monitoring, until
from tests.integration.raw_events import banned, naive, store_old_cooled, store_raw_event
from tests.integration.warm_fleet import FIRST_MIDNIGHT, MORNING, closed_days, warming_chips
from tests.integration.workers import running_worker


def failures(part: str) -> Callable[[], float]:
    """Reads `julia_chip_failures_total{part=...}` as Prometheus would scrape it."""
    return lambda: REGISTRY.get_sample_value("julia_chip_failures_total", {"part": part}) or 0.0


def logged_for(caplog: pytest.LogCaptureFixture, chip: str) -> bool:
    return any(chip in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_the_monitor_acts_for_the_fleet_while_one_chip_fails_every_check(
        nc: NATS, js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    """A current-version `Cooled` with a naive `until` (no upcaster touches the current
    version) makes every decision for that chip raise `TypeError`."""
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)
    broken, other = new_chip_id(), new_chip_id()
    counted = failures("health_monitor")
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), [broken, other])
        await store_old_cooled(js, broken, clock, naive(clock.now() + timedelta(hours=1)),
                               version=2)
        before = counted()
        async with monitoring(nc, clock) as monitor:
            await publish_observation(gateway, connection(f"inst-{other}", "close", 403, clock))
            await until(banned(js, other))
            await until(lambda: _failed_since(counted, before + 1))  # tried again and again
            assert broken in monitor.chips  # still followed, only its decisions fail
    assert logged_for(caplog, broken)


async def test_the_scheduler_closes_the_fleets_days_while_one_chip_cannot_be_scheduled(
        nc: NATS, js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    """A warm day opened at 9999-12-31 has no midnight after it: `is_due` overflows."""
    clock = FixedClock(MORNING)
    broken, other = new_chip_id(), new_chip_id()
    counted = failures("warmer_scheduler")
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), [broken, other])
        body: dict[str, object] = {"type": "Activated", "event_id": f"{broken}:far:0", "chip_id": broken,
                "command_id": "far", "occurred_at": "9999-12-31T12:00:00Z",
                "instance": f"inst-{broken}", "host": "vps-1", "daily_cap": 20}
        await store_raw_event(js, body, version=1)
        before = counted()
        scheduler = WarmerScheduler(nc, clock, tick=0.02)
        task = asyncio.create_task(scheduler.run())
        try:
            clock.set(FIRST_MIDNIGHT + timedelta(seconds=1))
            await until(lambda: _day_closed(js, other), timeout=10)
            assert not task.done()
        finally:
            scheduler.stop()
            await task
    assert counted() > before and logged_for(caplog, broken)
    assert await closed_days(js, broken) == {}


async def _failed_since(counted: Callable[[], float], before: float) -> bool:
    return counted() > before


async def _day_closed(js: JetStreamContext, chip: str) -> bool:
    return (await closed_days(js, chip))[1] == 1
