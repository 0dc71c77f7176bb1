"""`run_while_holding` over real KV: two holders on one key, one part running at a time; the
holder that stops hands over at once; a holder whose renewal fails stops its part at once and
stands by until the key is free again; a key whose holder is present waits for the TTL, one
whose holder is gone is taken over once stale."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import Bucket
from julia_chips.jetstream.leases.presence import present
from julia_chips.jetstream.leases.sightings import LeaseTiming
from julia_chips.jetstream.part_lease import part_lease, run_while_holding
from tests.conftest import LEASE_TTL
from tests.integration.lease_probe import LONG_TTL, holder_of, lease_bucket_with_ttl, until_holder

KEY = "test-part"
LOOK = LeaseTiming.for_ttl(LEASE_TTL).look_every  # how often a standby looks at its watch


class Floor:
    """Every tenure of the part, whoever runs it, in one place: a second one at once shows."""

    def __init__(self) -> None:
        self.running: list[str] = []
        self.started: list[str] = []
        self.most_at_once = 0

    def part(self, holder: str) -> Shift:
        return Shift(self, holder)

    async def until(self, running: list[str], timeout: float) -> float:
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            while self.running != running:  # noqa: ASYNC110 (the parts run in other tasks)
                await asyncio.sleep(0.01)
        return time.monotonic() - started


class Shift:
    def __init__(self, floor: Floor, holder: str) -> None:
        self._floor, self._holder = floor, holder
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        floor = self._floor
        floor.running.append(self._holder)
        floor.started.append(self._holder)
        floor.most_at_once = max(floor.most_at_once, len(floor.running))
        try:
            await self._stopped.wait()
        finally:
            floor.running.remove(self._holder)

    def stop(self) -> None:
        self._stopped.set()


@asynccontextmanager
async def holding(nc: NATS, floor: Floor, holder: str,
                  ttl: float = LEASE_TTL) -> AsyncIterator[asyncio.Event]:
    """`holder` runs the part while it holds KEY; the block's event stops it."""
    stopping = asyncio.Event()
    lease = await part_lease(nc, KEY, holder)
    task = asyncio.create_task(run_while_holding(lease, ttl, lambda: floor.part(holder),
                                                 stopping))
    try:
        yield stopping
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


async def test_one_holder_runs_the_part_and_a_standby_takes_over_when_it_stops(
        nc: NATS, js: JetStreamContext) -> None:
    floor = Floor()
    async with holding(nc, floor, "one") as stop_one:
        await floor.until(["one"], timeout=5)
        async with holding(nc, floor, "two"):
            await asyncio.sleep(1.5 * LEASE_TTL)  # renewals and standby looks meanwhile
            assert floor.started == ["one"]
            assert await holder_of(js, KEY) == "one"
            stop_one.set()
            # Released, not left to expire: the standby's next poll takes it.
            takeover = await floor.until(["two"], timeout=LEASE_TTL)
            assert takeover <= LOOK + 0.3, takeover
            assert await holder_of(js, KEY) == "two"
        assert floor.running == []
        assert await holder_of(js, KEY) is None  # "two" stopped and released it
    assert floor.started == ["one", "two"] and floor.most_at_once == 1


async def test_a_holder_whose_renewal_fails_stops_its_part_and_waits_out_a_present_holder(
        nc: NATS, js: JetStreamContext) -> None:
    floor = Floor()
    kv = await js.key_value(Bucket.SHARD_LEASES)
    timing = LeaseTiming.for_ttl(LEASE_TTL)
    async with holding(nc, floor, "one"), present(nc, "intruder"):
        await floor.until(["one"], timeout=5)
        await kv.put(KEY, b"intruder")  # the key moved under the holder: its next CAS fails
        moved = time.monotonic()
        stopped = await floor.until([], timeout=LEASE_TTL)
        assert stopped <= timing.renew_every + 0.3, stopped  # at the first renewal after it
        await asyncio.sleep(LEASE_TTL / 2)  # past `stale_after`: "one" probed, and waits
        assert floor.running == [] and await holder_of(js, KEY) == "intruder"  # standing by
        # The intruder never renews but its connection is there: only the TTL frees the key.
        await until_holder(js, KEY, "one", timeout=LEASE_TTL + 1)
        assert time.monotonic() - moved >= LEASE_TTL - 0.1
        await floor.until(["one"], timeout=1)
    assert floor.started == ["one", "one"] and floor.most_at_once == 1


@pytest.mark.own_nats_server  # its lease bucket gets a TTL of its own
async def test_a_stale_lease_whose_holder_is_gone_is_taken_over_long_before_the_ttl(
        nc: NATS, js: JetStreamContext) -> None:
    await lease_bucket_with_ttl(js, LONG_TTL)
    kv = await js.key_value(Bucket.SHARD_LEASES)
    await kv.put(KEY, b"ghost")  # a holder that died: nobody is subscribed as "ghost"
    put = time.monotonic()
    floor = Floor()
    async with holding(nc, floor, "one", ttl=LONG_TTL):
        await floor.until(["one"], timeout=LONG_TTL / 2)
        took = time.monotonic() - put
        assert await holder_of(js, KEY) == "one"
    timing = LeaseTiming.for_ttl(LONG_TTL)
    # Not before the key was stale (a renewal or two may just be late), and far from the TTL.
    assert timing.stale_after <= took <= timing.worst_takeover() + 1.0, took
