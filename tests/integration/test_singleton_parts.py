"""A second health monitor, activator or set of projections, as a second `julia-chips run`
starts them, stands by while the first holds the part's lease and takes over when the first
stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.activation.wiring import run_activator
from julia_chips.clock import FixedClock
from julia_chips.config import Config
from julia_chips.contract import chip as chip_ev
from julia_chips.contract.subjects import (
    ACTIVATOR_LEASE,
    FLEET_BRAKE_RELEASE,
    HEALTH_MONITOR_LEASE,
    PROJECTIONS_LEASE,
)
from julia_chips.db.migrate import migrate_url
from julia_chips.health.monitor import run_health_monitor
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import run_projections
from tests.conftest import LEASE_TTL
from tests.integration.activation_fixtures import FAST, activation_world
from tests.integration.health_rig import FAST as FAST_MONITOR
from tests.integration.health_rig import until
from tests.integration.lease_probe import holder_of, until_holder
from tests.integration.test_projections_lifecycles import (
    caught_up,
    checksums,
    publish_events,
    synthetic_history,
)

CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))


async def release_answers(nc: NATS) -> int:
    """How many monitors answer an operator's brake release: each running one does."""
    inbox = nc.new_inbox()
    answers = await nc.subscribe(inbox)
    await nc.publish(FLEET_BRAKE_RELEASE, b"", reply=inbox)
    count = 0
    try:
        while True:
            answer = await answers.next_msg(timeout=0.3)
            count += bool(answer.data)  # not the server's empty "no responders" status
    except TimeoutError:
        return count
    finally:
        await answers.unsubscribe()


async def test_a_second_health_monitor_stands_by_until_the_first_stops(
        nc: NATS, js: JetStreamContext) -> None:
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(run_health_monitor(nc, CLOCK, stop_a, LEASE_TTL, FAST_MONITOR,
                                                   holder="mon-a"))

    async def one_answers() -> bool:
        return await release_answers(nc) == 1
    await until(one_answers, timeout=10)
    second = asyncio.create_task(run_health_monitor(nc, CLOCK, stop_b, LEASE_TTL, FAST_MONITOR,
                                                    holder="mon-b"))
    try:
        # Asked again and again for ~1.5 TTL (each ask listens 0.3 s) while the standby
        # polls and the holder renews: one monitor answers every time.
        assert [await release_answers(nc) for _ in range(10)] == [1] * 10
        assert await holder_of(js, HEALTH_MONITOR_LEASE) == "mon-a"
        stop_a.set()
        await asyncio.wait_for(first, 5)
        await until_holder(js, HEALTH_MONITOR_LEASE, "mon-b", timeout=LEASE_TTL)
        await until(one_answers, timeout=5)  # the standby monitors now
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert await release_answers(nc) == 0
    assert await holder_of(js, HEALTH_MONITOR_LEASE) is None  # released on stop


async def test_a_second_activator_stands_by_then_activates_once_the_first_stops(
        nc: NATS, js: JetStreamContext) -> None:
    config = Config(lease_ttl=LEASE_TTL)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    async with activation_world(nc) as world:
        first = asyncio.create_task(run_activator(
            nc, CLOCK, config, stop_a, endpoints=world.endpoints, settings=FAST, holder="act-a"))
        await until_holder(js, ACTIVATOR_LEASE, "act-a", timeout=10)
        second = asyncio.create_task(run_activator(
            nc, CLOCK, config, stop_b, endpoints=world.endpoints, settings=FAST, holder="act-b"))
        try:
            await asyncio.sleep(1.5 * LEASE_TTL)
            assert await holder_of(js, ACTIVATOR_LEASE) == "act-a"
            stop_a.set()
            await asyncio.wait_for(first, 5)
            await until_holder(js, ACTIVATOR_LEASE, "act-b", timeout=LEASE_TTL)
            [chip] = await world.provision(1)
            await world.until_settled([chip], timeout=30)
            assert isinstance((await world.chip_events(chip))[-1], chip_ev.Activated)
        finally:
            stop_a.set()
            stop_b.set()
            await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert await holder_of(js, ACTIVATOR_LEASE) is None


async def test_projections_run_in_one_process_at_a_time_and_hand_over_on_stop(
        nc: NATS, js: JetStreamContext, database_url: str) -> None:
    await migrate_url(database_url)
    events = synthetic_history(chips=60, steps=20, seed=31)
    half = len(events) // 2
    await publish_events(js, events[:half])
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(run_projections(nc, database_url, stop_a, LEASE_TTL,
                                                batch=25, holder="proj-a"))
    await until_holder(js, PROJECTIONS_LEASE, "proj-a", timeout=10)
    second = asyncio.create_task(run_projections(nc, database_url, stop_b, LEASE_TTL,
                                                 batch=25, holder="proj-b"))
    try:
        await caught_up(js, database_url, timeout=30)
        assert await holder_of(js, PROJECTIONS_LEASE) == "proj-a"
        stop_a.set()
        await asyncio.wait_for(first, 10)
        await until_holder(js, PROJECTIONS_LEASE, "proj-b", timeout=LEASE_TTL)
        await publish_events(js, events[half:])
        await caught_up(js, database_url, timeout=30)  # the standby projects now
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.wait_for(asyncio.gather(first, second), 10)
    projected = await checksums(database_url)
    assert projected["julia_chips"][0] == len({e.chip_id for e in events})
    await rebuild(nc, database_url, show_progress=False)
    assert await checksums(database_url) == projected  # nothing lost or doubled on the way
