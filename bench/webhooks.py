"""Webhook ingress throughput and latency against raw JetStream publishes, plus activation
throughput through the sandbox. Real nats-server, real HTTP on loopback.

The ingress runs in its own process (as in production); the load generator keeps
`CONCURRENCY` requests in flight for the peak, then sends open-loop at half the peak rate for
the p99. The raw rate is `js.publish` with the same concurrency, in the same run.
Last line: `result: webhooks value=<x> baseline=<y> ratio=<x/y> target=0.4`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import nats
import uvloop
from aiohttp import web

from julia_chips.app import partition_settings
from julia_chips.client import ChipClient
from julia_chips.clock import SystemClock
from julia_chips.config import Config
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.events import chip as chip_ev
from julia_chips.events import commands as cmd
from julia_chips.http.webhooks import WebhookIngress, create_webhook_app
from julia_chips.runtime.activator import Activator, ActivatorSettings
from julia_chips.runtime.activator_wiring import activation_ports, endpoints_from_sandbox
from julia_chips.runtime.worker import Worker
from julia_chips.sandbox.world import serve, start_sandbox
from julia_chips.store.event_log import JetStreamChipEventLog
from julia_chips.store.streams import ensure_streams

SECRET = "bench-" + secrets.token_hex(8)
CONCURRENCY = 64
REQUESTS = 12_000
PARTITIONS = 4
CHIPS = 60


def body(n: int) -> bytes:
    stamp = datetime.now(UTC).isoformat()
    return (f'{{"event":"connection.update","instance":"chip-{n % 500}","data":{{"instance":'
            f'"chip-{n % 500}","state":"open","statusReason":200}},"date_time":"{stamp}",'
            f'"n":{n}}}').encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingress_process(nats_url: str, port: int, secret: str) -> None:
    async def main() -> None:
        nc = await nats.connect(nats_url)
        ingress = WebhookIngress(nc.jetstream(), SystemClock(), evolution_secret=secret,
                                 salvy_secret=None)
        runner = web.AppRunner(create_webhook_app(ingress), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()
    uvloop.run(main())


async def raw_rate(nats_url: str) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(n: int) -> None:
        async with gate:
            await js.publish(f"gw.in.evolution.chip-{n % 500}", body(n))

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(REQUESTS)))
    elapsed = time.perf_counter() - start
    await nc.close()
    return REQUESTS / elapsed


async def ingress_peak(url: str) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(n: int) -> None:
            async with gate, s.post(url, data=body(n), headers={"x-julia-secret": SECRET}) as r:
                assert r.status == 200, r.status

        await asyncio.gather(*(one(n) for n in range(500)))  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(1000, 1000 + REQUESTS)))
        return REQUESTS / (time.perf_counter() - start)


async def paced_p99(url: str, rate: float, seconds: float = 5.0) -> float:
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as s:
        async def one(n: int) -> None:
            start = time.perf_counter()
            async with s.post(url, data=body(n), headers={"x-julia-secret": SECRET}) as r:
                assert r.status == 200
            latencies.append(time.perf_counter() - start)

        tasks, begin, total = [], time.perf_counter(), int(rate * seconds)
        for n in range(total):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(10**6 + n)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1] * 1000


async def activations_per_minute(nats_url: str) -> float:
    nc = await nats.connect(nats_url)
    sandbox = await start_sandbox(hosts=10, host_capacity=20, link_delay=0.05, pace=0.01)
    ingress = WebhookIngress(nc.jetstream(), SystemClock(), evolution_secret=SECRET,
                             salvy_secret=sandbox.salvy_webhook_secret)
    runner, base = await serve(create_webhook_app(ingress))
    sandbox.salvy.webhook_url = base + "/webhooks/salvy"
    endpoints = endpoints_from_sandbox(sandbox, webhook_url=base + "/webhooks/evolution",
                                       webhook_secret=SECRET)
    worker = Worker(nc, SystemClock(), PARTITIONS, 2.0, partition_settings(Config()))
    tasks = [asyncio.create_task(worker.run())]
    chips = ChipClient(nc)
    async with activation_ports(nc, endpoints) as ports:
        tasks.append(asyncio.create_task(Activator(ports, SystemClock(),
                                                   ActivatorSettings()).run()))
        while len(worker.partitions_held) < PARTITIONS:  # noqa: ASYNC110 (polling)
            await asyncio.sleep(0.05)
        ids = [f"bench-{n:04d}-{secrets.token_hex(4)}" for n in range(CHIPS)]
        start = time.perf_counter()
        await asyncio.gather(*(chips.send(c, cmd.Provision(command_id="p", ddd=11))
                               for c in ids))
        log, pending = JetStreamChipEventLog(nc.jetstream()), set(ids)
        while pending:
            for chip in list(pending):
                if any(isinstance(s.event, chip_ev.Activated) for s in await log.load(chip)):
                    pending.discard(chip)
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - start
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    worker.stop()
    await chips.close()
    await sandbox.close()
    await runner.cleanup()
    await nc.close()
    return CHIPS / elapsed * 60


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp) / "nats", PARTITIONS)
        url = server.start()
        try:
            nc = await nats.connect(url)
            await ensure_streams(nc.jetstream())
            await nc.close()
            raw = await raw_rate(url)
            port = free_port()
            proc = multiprocessing.get_context("spawn").Process(
                target=ingress_process, args=(url, port, SECRET), daemon=True)
            proc.start()
            hook = f"http://127.0.0.1:{port}/webhooks/evolution"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            peak = await ingress_peak(hook)
            p99 = await paced_p99(hook, peak / 2)
            proc.terminate()
            per_minute = await activations_per_minute(url)
        finally:
            server.stop()
    print(f"raw JetStream publish: {raw:,.0f} msg/s (concurrency {CONCURRENCY})")
    print(f"webhook ingress peak: {peak:,.0f} req/s (raw + observation stored before each 200)")
    print(f"p99 latency at half peak ({peak / 2:,.0f} req/s): {p99:.2f} ms (target <= 20 ms)")
    print(f"activations through the sandbox, 10 hosts: {per_minute:,.0f} per minute "
          f"({CHIPS} chips)")
    print(f"result: webhooks value={peak:.0f} baseline={raw:.0f} ratio={peak / raw:.3f} "
          "target=0.4")


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
