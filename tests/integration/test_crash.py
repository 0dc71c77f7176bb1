"""SIGKILL a worker process under load: no acknowledged command is lost, no event doubled."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip_commands import CommandReply
from julia_chips.contract.subjects import Bucket, Stream
from tests.conftest import LEASE_TTL, PARTITIONS, new_chip_id
from tests.integration.workers import kill, start_worker_process

CHIPS = 500
PER_CHIP = 10  # 5,000 commands


def chip_commands() -> list[cmd.AnyChipCommand]:
    return [
        cmd.Provision(command_id="p"),
        cmd.StartActivation(command_id="s"),
        cmd.CompleteActivation(command_id="c", instance="i", host="h"),
        *(cmd.ObserveTraffic(command_id=f"o{n}", sent=1, delivered=1) for n in range(PER_CHIP - 3)),
    ]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition the load's replies make true (no event to wait on across chips)."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def lease_holders(js: JetStreamContext) -> dict[int, str]:
    kv = await js.key_value(Bucket.SHARD_LEASES)
    holders = {}
    for p in range(PARTITIONS):
        try:
            entry = await kv.get(f"p{p}")
        except Exception:
            continue
        if entry.value:
            holders[p] = entry.value.decode()
    return holders


async def wait_for_holder(js: JetStreamContext, worker_id: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        holders = await lease_holders(js)
        if len(holders) == PARTITIONS and set(holders.values()) == {worker_id}:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{worker_id} did not take every partition: {await lease_holders(js)}")


async def test_sigkill_mid_load_loses_no_acknowledged_command_and_doubles_nothing(
        nc: NATS, js: JetStreamContext, nats_url: str, tmp_path: Path) -> None:
    first = start_worker_process(nats_url, tmp_path / "worker-a.log", "worker-a")
    second = None
    try:
        await wait_for_holder(js, "worker-a", timeout=20)
        client = ChipClient(nc)
        chips = [new_chip_id() for _ in range(CHIPS)]
        acked: dict[str, dict[str, CommandReply]] = {c: {} for c in chips}

        async def drive(chip: str) -> None:
            for command in chip_commands():
                reply = await client.send(chip, command, timeout=60)
                assert reply.ok, reply
                acked[chip][command.command_id] = reply

        load = asyncio.gather(*(drive(c) for c in chips))
        await wait_until(lambda: sum(len(a) for a in acked.values()) >= CHIPS * PER_CHIP * 0.3)
        kill(first)  # SIGKILL: no cleanup, leases left behind
        second = start_worker_process(nats_url, tmp_path / "worker-b.log", "worker-b")
        # Taken over once worker-a is proved gone (test_lease_takeover.py times it).
        await wait_for_holder(js, "worker-b", timeout=LEASE_TTL + 20)
        await asyncio.wait_for(load, timeout=120)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                kill(proc)

    log = JetStreamChipEventLog(js)
    for chip in chips:
        stored = await log.load(chip)
        ids = Counter(s.event.event_id for s in stored)
        assert max(ids.values()) == 1, f"doubled events on {chip}: {ids.most_common(2)}"
        by_command = Counter(s.event.command_id for s in stored)
        assert set(by_command) == set(acked[chip]) and all(v == 1 for v in by_command.values())
        seqs = {s.seq for s in stored}
        for reply in acked[chip].values():
            assert {e.seq for e in reply.events} <= seqs  # what the sender was told is stored
    assert (await js.stream_info(Stream.CHIP_CMDS)).state.messages == 0
