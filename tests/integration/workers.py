"""Run chip workers in the test process (fast paths) or as real processes (crash tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from julia_chips.chip.client import ChipClient
from julia_chips.chip.partition import PartitionSettings
from julia_chips.chip.worker import Worker
from julia_chips.clock import Clock, FixedClock
from julia_chips.contract import chip_commands as cmd
from julia_chips.warmer.model.policy import WarmupPolicy
from tests.conftest import LEASE_TTL, PARTITIONS, new_chip_id

SETTINGS = PartitionSettings(ack_wait=3.0, max_deliver=3, snapshot_every=5, idle_passivate=60,
                             policy=WarmupPolicy(min_days=2, max_days=4))


@asynccontextmanager
async def running_worker(nc: NATS, clock: Clock | None = None,
                         settings: PartitionSettings = SETTINGS,
                         wait_for_all: bool = True) -> AsyncIterator[Worker]:
    """A worker that holds every partition before the block starts (unless told not to)."""
    clock = clock or FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))
    worker = Worker(nc, clock, PARTITIONS, LEASE_TTL, settings)
    task = asyncio.create_task(worker.run())
    for _ in range(200 if wait_for_all else 0):
        if len(worker.partitions_held) == PARTITIONS:
            break
        await asyncio.sleep(0.02)
    try:
        yield worker
    finally:
        worker.stop()
        await task


def start_worker_process(nats_url: str, log: Path, worker_id: str,
                         extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`julia-chips worker` as its own OS process, so a test can SIGKILL it."""
    env = {**os.environ, "NATS_URL": nats_url, "JULIA_PARTITIONS": str(PARTITIONS),
           "JULIA_LEASE_TTL": str(LEASE_TTL), "JULIA_ACK_WAIT": "3", **(extra_env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "julia_chips", "worker", "--worker-id", worker_id],
            env=env, stdout=out, stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def chip_per_partition(nc: NATS, partitions: int = PARTITIONS) -> dict[int, str]:
    """A provisioned chip on every partition, by partition: the server's own mapping
    (`chip.cmd.<id>` -> `chip.cmd.<p>.<id>`) is read off a core subscription, not computed."""
    found: dict[int, str] = {}

    async def mapped(msg: Msg) -> None:
        _, _, partition, chip_id = msg.subject.split(".", 3)
        found.setdefault(int(partition), chip_id)

    subscription = await nc.subscribe("chip.cmd.*.*", cb=mapped)
    client = ChipClient(nc)
    try:
        for _ in range(50 * partitions):
            if len(found) == partitions:
                break
            chip_id = new_chip_id()
            reply = await client.send(chip_id, cmd.Provision(command_id="p"), timeout=30)
            assert reply.ok, reply
    finally:
        await subscription.unsubscribe()
        await client.close()
    assert len(found) == partitions, found
    return found
