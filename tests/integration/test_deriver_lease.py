"""Two observation derivers in two OS processes, as two `julia-chips run` would have them:
one derives while holding the lease, the other stands by; SIGKILL the holder while bodies keep
coming and the standby takes over within the lease TTL, and every body still has exactly one
observation, in the bodies' order."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import DERIVER_LEASE, Stream
from julia_chips.ingest.deriver import ObservationDeriver
from julia_chips.jetstream.leases.sightings import LeaseTiming
from tests.conftest import LEASE_TTL
from tests.integration.ingress_fixtures import (
    FAST_DERIVER,
    Ingress,
    ingress_only,
    stamped,
    stored,
    until_derived,
    until_stored,
)
from tests.integration.lease_probe import holder_of, until_holder
from tests.integration.test_observation_deriver import observed_ids, sms, upsert
from tests.integration.workers import kill

__all__ = ["ingress_only"]

BODIES = 150
LOOK = LeaseTiming.for_ttl(LEASE_TTL).look_every  # how often a standby looks at its watch


def start_deriver(nats_url: str, holder: str, tmp: Path) -> subprocess.Popen[bytes]:
    with (tmp / f"{holder}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.deriver_process", nats_url, "-", holder],
            stdout=out, stderr=subprocess.STDOUT)


def read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def until_logged(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(20):
        while text not in await asyncio.to_thread(read, log):
            assert proc.poll() is None, read(log)
            await asyncio.sleep(0.05)


async def test_sigkill_the_deriver_holding_the_lease_and_the_standby_takes_over(
        ingress_only: Ingress, nc: NATS, js: JetStreamContext, nats_url: str,
        tmp_path: Path) -> None:
    await ObservationDeriver(nc, FAST_DERIVER).prepare()  # before the first webhook
    first = start_deriver(nats_url, "der-a", tmp_path)
    second = None
    in_order: list[str] = []

    async def webhooks() -> None:  # they keep coming through the kill and the takeover
        for n in range(BODIES):
            assert (await ingress_only.evolution(stamped(upsert(n), ingress_only.clock)))[0] == 200
            in_order.append(f"MSG{n:04d}")
            if n % 10 == 0:
                assert (await ingress_only.salvy(sms(n // 10)))[0] == 200
                in_order.append(f"sms_{n // 10:04d}")
            await asyncio.sleep(0.02)

    try:
        await until_holder(js, DERIVER_LEASE, "der-a", timeout=20)
        second = start_deriver(nats_url, "der-b", tmp_path)
        await until_logged(tmp_path / "der-b.log", "der-b connected", second)
        sending = asyncio.create_task(webhooks())
        await until_stored(js, Stream.GATEWAY_OBS, 30, timeout=20)  # the holder derives
        assert "der-b holds lease" not in read(tmp_path / "der-b.log")  # it stood by
        assert await holder_of(js, DERIVER_LEASE) == "der-a"
        assert not sending.done()  # killed mid-flow
        kill(first)
        killed = time.monotonic()
        await until_holder(js, DERIVER_LEASE, "der-b", timeout=LEASE_TTL + 10)
        takeover = time.monotonic() - killed
        await asyncio.wait_for(sending, 30)
        await until_derived(js, timeout=20)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                kill(proc)
    assert takeover <= LEASE_TTL + LOOK + 0.5, f"took over after {takeover:.2f}s"
    ids = await observed_ids(js)
    assert list(ids) == in_order  # one deriver at a time, rewound: the order bodies came in
    assert [i for i, times in ids.items() if times != 1] == [], ids
    assert await stored(js, Stream.GATEWAY_OBS) == len(in_order)
