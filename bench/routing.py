"""Routing benchmark: decisions inside the actor, requests through NATS, failover time.

    .venv/bin/python bench/routing.py                     # 1,000 chips, 100,000 doctors
    .venv/bin/python bench/routing.py --chips 100 --doctors 10000 --requests 2000

Runs a real nats-server (embedded). The baseline is the raw JetStream request rate (publish
+ ack) at the same concurrency in the same run; the last line is the result for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import nats
from nats.js.api import StreamConfig

from julia_chips.actors.balancer import decide
from julia_chips.actors.balancer_state import BalancerState, apply_chip_event, evolve
from julia_chips.clock import FixedClock
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.events import chip as ev
from julia_chips.events import route as rt
from julia_chips.events.chip import Status
from julia_chips.events.codec import ENCODER
from julia_chips.route_client import RouteClient
from julia_chips.runtime.balancer_dispatch import FakeSender
from julia_chips.runtime.balancer_leader import BalancerSettings
from julia_chips.runtime.balancer_runner import BalancerRunner
from julia_chips.store.event_log import JetStreamChipEventLog
from julia_chips.store.streams import ensure_streams
from julia_chips.subjects import JuliaHeader, route_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fleet builders
from tests.unit.balancer_builders import NOW, chip_history

PHONE = "+5511987654321"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def bench_decisions(chips: int, doctors: int) -> tuple[float, float, float]:
    """decide + evolve for every doctor once (new) and once more (sticky)."""
    state = BalancerState()
    for n in range(chips):
        for event in chip_history(f"chip-{n:04}", Status.ACTIVE, 1_000_000):
            apply_chip_event(state, event)
    latencies: list[float] = []
    order = [f"doc{n}" for n in range(doctors)] * 2
    random.Random(1).shuffle(order)
    started = time.perf_counter()
    for n, doctor_id in enumerate(order):
        request = rt.SendRequest(command_id=f"r{n}", doctor_id=doctor_id, doctor_phone=PHONE,
                                 text="oi", kind="reply", consented=True)
        t0 = time.perf_counter()
        for event in decide(state, request, NOW):
            evolve(state, event)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return len(order) / elapsed, pct(latencies, 0.5) * 1e3, pct(latencies, 0.99) * 1e3


async def raw_rate(js: nats.js.JetStreamContext, requests: int, concurrency: int) -> float:
    await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"]))
    body = b'{"doctor_id":"doc1","text":"oi"}'
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            await js.publish(f"bench.raw.{n % 1000}", body)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def seed(js: nats.js.JetStreamContext, chips: int, hot_conversations: int) -> None:
    log = JetStreamChipEventLog(js)
    await asyncio.gather(*(log.append(f"chip-{n:04}", chip_history(f"chip-{n:04}",
                                                                   Status.ACTIVE, 100_000), 0)
                           for n in range(chips)))
    for n in range(hot_conversations):  # chip-0000 holds these before the balancer starts
        event = rt.ConversationAssigned(event_id=f"seed-{n}", doctor_id=f"hot{n}",
                                        command_id="seed", occurred_at=NOW,
                                        chip_id="chip-0000", consented=True)
        await js.publish(route_events(event.doctor_id), ENCODER.encode(event),
                         headers={JuliaHeader.EVENT_TYPE: "ConversationAssigned"})


async def end_to_end(nc: nats.NATS, doctors: int, requests: int, concurrency: int
                     ) -> tuple[float, float, float]:
    client = RouteClient(nc)
    latencies: list[float] = []
    rng = random.Random(2)
    queue = [f"doc{rng.randrange(doctors)}" for _ in range(requests)]

    async def worker() -> None:
        while queue:
            doctor_id = queue.pop()
            t0 = time.perf_counter()
            reply = await client.send(doctor_id, PHONE, "oi", "reply", True, timeout=60)
            assert reply.ok, reply
            latencies.append(time.perf_counter() - t0)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = requests / (time.perf_counter() - started)
    return rate, pct(latencies, 0.5) * 1e3, pct(latencies, 0.99) * 1e3


async def failover(js: nats.js.JetStreamContext, runner: BalancerRunner) -> float:
    log = JetStreamChipEventLog(js)
    cooled = ev.Cooled(event_id="bench-cool", chip_id="chip-0000", command_id="bench",
                       occurred_at=NOW, reason="bench", until=NOW + timedelta(hours=1),
                       previous_status=Status.ACTIVE)
    await log.append("chip-0000", [cooled], await log.last_seq("chip-0000"))
    while not runner.failovers:  # noqa: ASYNC110 - polling a list the runner appends to
        await asyncio.sleep(0.01)
    return runner.failovers[-1].seconds


async def main(args: argparse.Namespace) -> None:
    rate, p50, p99 = bench_decisions(args.chips, args.doctors)
    print(f"decisions: {args.chips} chips, {args.doctors} doctors, {2 * args.doctors} decisions:"
          f" {rate:,.0f}/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms (target p99 <= 1 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp) / "nats", 16)
        server.start()
        try:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await ensure_streams(js, lease_ttl=5.0)
            await seed(js, args.chips, args.hot)
            settings = BalancerSettings(max_active=args.chips, lease_ttl=5.0)
            runner = BalancerRunner(nc, FixedClock(NOW), settings, FakeSender())
            task = asyncio.create_task(runner.run())
            await runner.leading.wait()
            baseline = await raw_rate(js, args.requests, args.concurrency)
            value, e2e50, e2e99 = await end_to_end(nc, args.doctors, args.requests,
                                                   args.concurrency)
            print(f"end-to-end: {args.requests} requests, concurrency {args.concurrency}: "
                  f"{value:,.0f}/s, p50 {e2e50:.1f} ms, p99 {e2e99:.1f} ms; raw JetStream "
                  f"publish+ack {baseline:,.0f}/s")
            seconds = await failover(js, runner)
            print(f"failover: {runner.failovers[-1].reassigned} conversations reassigned in "
                  f"{seconds:.3f} s (target <= 2 s)")
            runner.stop()
            await task
            await nc.close()
        finally:
            server.stop()
    print(f"result: routing value={value:.1f} baseline={baseline:.1f} "
          f"ratio={value / baseline:.3f} target=0.3")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--doctors", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--hot", type=int, default=1000, help="conversations on the failed chip")
    asyncio.run(main(parser.parse_args()))
