"""Benchmark: chip commands through the full path, against raw JetStream publishing.

Full path: publish to chip.cmd.<id> -> worker process decides -> events appended with the
expected-sequence check -> reply to the sender. Baseline, on the same server in the same
run: plain `js.publish_async` of payloads of the same size.

    .venv/bin/python bench/commands.py [--chips 1000] [--commands 50000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import nats
import uvloop
from nats.aio.client import Client as NATS

from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.codec import decode_reply
from julia_chips.contract.subjects import chip_command
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.jetstream.streams import ensure_streams

ENCODER = msgspec.json.Encoder()
TARGET = 0.35
WINDOW = 4000  # commands in flight at once
PROFILE = os.environ.get("BENCH_PROFILE", "")  # "cprofile" or "py-spy": profile each worker


def chip_script(chip: str, per_chip: int) -> list[cmd.AnyChipCommand]:
    head: list[cmd.AnyChipCommand] = [
        cmd.Provision(command_id=f"{chip}-p"), cmd.StartActivation(command_id=f"{chip}-s"),
        cmd.CompleteActivation(command_id=f"{chip}-c", instance="bench", host="h")]
    return head + [cmd.ObserveTraffic(command_id=f"{chip}-o{n}", sent=1, delivered=1)
                   for n in range(per_chip - len(head))]


async def raw_publish_rate(nc: NATS, payload: bytes, count: int) -> float:
    js = nc.jetstream(publish_async_max_pending=WINDOW)
    await js.add_stream(name="BENCH_RAW", subjects=["bench.raw.>"])
    start = time.perf_counter()
    for n in range(count):
        await js.publish_async(f"bench.raw.{n % 1000}", payload)
    await js.publish_async_completed()
    rate = count / (time.perf_counter() - start)
    await js.delete_stream("BENCH_RAW")
    return rate


class Sender:
    """Publishes commands and matches replies on one wildcard inbox, timing each one."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream(publish_async_max_pending=WINDOW)
        self.prefix = nc.new_inbox()
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.failures = 0
        self.done = asyncio.Event()
        self.expected = 0
        self.window = asyncio.Semaphore(WINDOW)

    async def on_reply(self, msg: nats.aio.msg.Msg) -> None:
        started = self.sent_at.pop(msg.subject, None)
        if started is None:
            return
        self.window.release()
        self.latencies.append(time.perf_counter() - started)
        if not decode_reply(msg.data).ok:
            self.failures += 1
        if len(self.latencies) == self.expected:
            self.done.set()

    async def send(self, chip: str, command: cmd.AnyChipCommand, token: int) -> None:
        await self.window.acquire()
        reply_to = f"{self.prefix}.{token}"
        body = ENCODER.encode(msgspec.structs.replace(command, reply_to=reply_to))
        self.sent_at[reply_to] = time.perf_counter()
        # The actor's reply proves the command was stored and handled, so the full path
        # does not also wait for JetStream's publish ack.
        await self.nc.publish(chip_command(chip), body)


async def full_path(nc: NATS, chips: list[str], per_chip: int) -> tuple[float, list[float], int]:
    sender = Sender(nc)
    await nc.subscribe(f"{sender.prefix}.*", cb=sender.on_reply)
    scripts = [chip_script(c, per_chip) for c in chips]
    sender.expected = len(chips) * per_chip
    start = time.perf_counter()
    token = 0
    for step in range(per_chip):
        for chip, script in zip(chips, scripts, strict=True):
            await sender.send(chip, script[step], token)
            token += 1
    await asyncio.wait_for(sender.done.wait(), timeout=600)
    return sender.expected / (time.perf_counter() - start), sender.latencies, sender.failures


def start_workers(url: str, count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "NATS_URL": url, "JULIA_PARTITIONS": "16", "JULIA_LEASE_TTL": "3"}
    procs = []
    for n in range(count):
        with (log_dir / f"worker-{n}.log").open("wb") as out:
            command = [sys.executable, "-m", "julia_chips", "worker"]
            if PROFILE == "cprofile":
                command[1:1] = ["-m", "cProfile", "-o", str(log_dir / f"worker-{n}.prof")]
            elif PROFILE == "py-spy":
                spy = Path(sys.executable).with_name("py-spy")
                command[:0] = [str(spy), "record", "-o", str(log_dir / f"worker-{n}.txt"),
                               "-f", "raw", "--"]
            procs.append(subprocess.Popen(command,
                                          env=env, stdout=out, stderr=subprocess.STDOUT))
    return procs


async def wait_for_partitions(nc: NATS, partitions: int = 16) -> None:
    kv = await nc.jetstream().key_value("shard_leases")
    for _ in range(400):
        try:
            keys = await kv.keys()
        except Exception:
            keys = []
        if sum(1 for k in keys if k.startswith("p")) >= partitions:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("workers did not take the partitions")


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-commands-"))
    server = EmbeddedNats(workdir / "nats", 16)
    server.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        nc = await nats.connect(server.url)
        await ensure_streams(nc.jetstream())
        chips = [str(uuid.uuid4()) for _ in range(args.chips)]
        per_chip = max(4, args.commands // args.chips)
        sample = ENCODER.encode(chip_script(chips[0], 4)[3])
        count = args.chips * per_chip
        # The raw rate moves ±30% between runs here: take the best of three, one of them
        # after the full path, so the ratio is never flattered by an unlucky baseline.
        rates = [await raw_publish_rate(nc, sample, count) for _ in range(2)]
        workers = start_workers(server.url, args.workers, workdir)
        await wait_for_partitions(nc)
        rate, latencies, failures = await full_path(nc, chips, per_chip)
        rates.append(await raw_publish_rate(nc, sample, count))
        baseline = max(rates)
        print(f"raw js.publish_async: best {baseline:,.0f} msg/s of "
              f"{', '.join(f'{r:,.0f}' for r in rates)} ({len(sample)} B payload)")
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"full path: {len(latencies):,} commands over {args.chips:,} chips, "
              f"{args.workers} worker process(es): {rate:,.0f} commands/s, "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, refused {failures}")
        await nc.close()
        print(f"result: commands value={rate:.0f} baseline={baseline:.0f} "
              f"ratio={rate / baseline:.3f} target={TARGET}")
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGINT)  # py-spy, when profiling, writes its file on SIGINT
            proc.wait()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=1)
    uvloop.run(main(parser.parse_args()))
