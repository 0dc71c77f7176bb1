"""Benchmark: how long a killed holder's work waits for another process, against the lease TTL.

Three holders, each SIGKILLed while a standby process runs beside it, `--rounds` times:
* a chip worker (two `julia-chips worker` processes, 16 partitions): the time from the
  SIGKILL to the first answered command on each partition the dead worker held (a command
  sent at the kill, answered once the partition is served again);
* the balancer leader (two balancer processes): the time to the first answered route request;
* the activator (two activator processes): the time until the standby holds the lease.
The baseline is the lease TTL of the same run: what every one of them waited before a
standby could prove the holder's death (`jetstream/leases/`). The killed process is started
again as the new standby before the next round.

    PYTHONPATH=src .venv/bin/python bench/takeover.py [--rounds 3] [--ttl 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import uvloop
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.chip.client import ChipClient
from julia_chips.chip.partition_leases import partition_key
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import ACTIVATOR_LEASE, BALANCER_LEASE
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.jetstream.streams import ensure_streams

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' process launchers and probes
from tests.integration.activator_lease_process import start_activator  # noqa: E402
from tests.integration.balancer_harness import seed_chip  # noqa: E402
from tests.integration.balancer_process import start_balancer  # noqa: E402
from tests.integration.lease_probe import holder_of, lease_holders, until_present  # noqa: E402
from tests.integration.workers import chip_per_partition, kill  # noqa: E402

TARGET = 2.0
PARTITIONS = 16
Start = Callable[[str], subprocess.Popen[bytes]]


def start_worker(url: str, ttl: float, logs: Path) -> Start:
    def start(worker_id: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "NATS_URL": url, "JULIA_PARTITIONS": str(PARTITIONS),
               "JULIA_LEASE_TTL": str(ttl), "JULIA_ACK_WAIT": "3"}
        with (logs / f"{worker_id}.log").open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "julia_chips", "worker", "--worker-id", worker_id],
                env=env, stdout=out, stderr=subprocess.STDOUT)
    return start


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.05)


async def workers_round(nc: NATS, js: JetStreamContext, procs: dict[str, subprocess.Popen[bytes]],
                        start: Start, chips: dict[int, str], victim: str,
                        n: int) -> list[float]:
    """Kill `victim` once both workers hold their share; seconds to each partition's answer."""
    keys = [partition_key(p) for p in range(PARTITIONS)]

    async def split() -> bool:
        holders = list((await lease_holders(js, keys)).values())
        return len(holders) == PARTITIONS and all(
            holders.count(w) == PARTITIONS // 2 for w in procs)
    await until(split)
    holders = await lease_holders(js, keys)
    doomed = [p for p in range(PARTITIONS) if holders[partition_key(p)] == victim]
    client = ChipClient(nc)
    kill(procs[victim])
    killed = time.monotonic()

    async def answered(partition: int) -> float:
        reply = await client.send(chips[partition], cmd.ObserveTraffic(
            command_id=f"r{n}-{partition}", sent=1, delivered=1), timeout=60)
        assert reply.ok, reply
        return time.monotonic() - killed

    seconds = list(await asyncio.gather(*(answered(p) for p in doomed)))
    await client.close()
    procs[victim] = start(victim)
    return seconds


async def workers(nc: NATS, js: JetStreamContext, url: str, ttl: float, logs: Path,
                  rounds: int) -> list[float]:
    start = start_worker(url, ttl, logs)
    procs = {w: start(w) for w in ("worker-a", "worker-b")}
    try:
        await until(lambda: _all_held(js))
        chips = await chip_per_partition(nc, PARTITIONS)
        for chip in chips.values():  # active, so traffic is a command every partition takes
            for command in (cmd.StartActivation(command_id="s"),
                            cmd.CompleteActivation(command_id="c", instance="i", host="h")):
                assert (await ChipClient(nc).send(chip, command, timeout=30)).ok
        worst: list[float] = []
        for n in range(rounds):
            victim = ("worker-a", "worker-b")[n % 2]
            seconds = await workers_round(nc, js, procs, start, chips, victim, n)
            worst.append(max(seconds))
            print(f"worker round {n + 1}: SIGKILL {victim}: its {len(seconds)} partitions "
                  f"answered after {', '.join(f'{s:.2f}' for s in sorted(seconds))} s "
                  f"(worst {max(seconds):.2f} s; lease TTL {ttl:.0f} s)", flush=True)
        return worst
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                kill(proc)


async def _all_held(js: JetStreamContext) -> bool:
    keys = [partition_key(p) for p in range(PARTITIONS)]
    return len(await lease_holders(js, keys)) == PARTITIONS


async def singleton(nc: NATS, js: JetStreamContext, key: str, start: Start, rounds: int,
                    served: Callable[[str, int], Awaitable[None]], what: str,
                    ttl: float) -> list[float]:
    """Holder and standby of `key`; each round kills the holder and times `served`."""
    names = [f"{key}-a", f"{key}-b"]
    procs = {names[0]: start(names[0])}
    try:
        await until(lambda: _held_by(js, key, names[0]))
        procs[names[1]] = start(names[1])
        times = []
        for n in range(rounds):
            holder = await holder_of(js, key)
            assert holder in procs, holder
            standby = next(name for name in names if name != holder)
            await until_present(nc, standby, timeout=60)
            await served(holder, n)  # the holder serves before it is killed
            kill(procs[holder])
            killed = time.monotonic()
            await served(standby, n)
            times.append(time.monotonic() - killed)
            print(f"{key} round {n + 1}: SIGKILL {holder}: {what} after {times[-1]:.2f} s "
                  f"(lease TTL {ttl:.0f} s)", flush=True)
            procs[holder] = start(holder)
        return times
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                kill(proc)


async def _held_by(js: JetStreamContext, key: str, holder: str) -> bool:
    return await holder_of(js, key) == holder


async def main(args: argparse.Namespace) -> None:
    os.chdir(REPO)  # `python -m tests.integration...` for the balancer and activator processes
    logs = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    server = EmbeddedNats(logs / "nats", PARTITIONS)
    server.start()
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_streams(js, lease_ttl=args.ttl)
        worker_worst = await workers(nc, js, server.url, args.ttl, logs, args.rounds)

        for chip_id in ("bench-a", "bench-b"):
            await seed_chip(js, chip_id, Status.ACTIVE, 100_000)
        router = RouteClient(nc)

        async def routed(_: str, n: int) -> None:
            reply = await router.send(f"doc-{n}-{time.monotonic_ns()}", "+5511987654321", "oi",
                                      "reply", timeout=60)
            assert reply.ok, reply
        balancer = await singleton(
            nc, js, BALANCER_LEASE, lambda name: start_balancer(server.url, name, logs, args.ttl),
            args.rounds, routed, "first route request answered", args.ttl)

        async def holds(name: str, _: int) -> None:
            await until(lambda: _held_by(js, ACTIVATOR_LEASE, name))
        activator = await singleton(
            nc, js, ACTIVATOR_LEASE,
            lambda name: start_activator(server.url, name, logs / f"{name}.log", args.ttl),
            args.rounds, holds, "lease held by the standby", args.ttl)
        await router.close()
        await nc.close()

        figures = {"worker partitions": max(worker_worst), "balancer leader": max(balancer),
                   "activator": max(activator)}
        for name, seconds in figures.items():
            print(f"{name}: worst {seconds:.2f} s over {args.rounds} kills "
                  f"(baseline: the lease TTL, {args.ttl:.0f} s; ratio {seconds / args.ttl:.3f})")
        value = max(figures.values())
        print(f"logs in {logs}")
        print(f"result: takeover value={value:.2f} baseline={args.ttl:.0f} "
              f"ratio={value / args.ttl:.3f} target={TARGET:.0f}")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=10.0, help="JULIA_LEASE_TTL (seconds)")
    uvloop.run(main(parser.parse_args()))
