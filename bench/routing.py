"""Routing benchmark: decisions inside the actor, requests through NATS, failover time.

    .venv/bin/python bench/routing.py                     # 1,000 chips, 100,000 doctors
    .venv/bin/python bench/routing.py --chips 100 --doctors 10000 --requests 2000
    .venv/bin/python bench/routing.py --profile /tmp/balancer.txt   # py-spy, collapsed stacks

Runs a real nats-server (embedded) and the balancer as its own process
(`python -m tests.integration.balancer_process`, as in the leader-kill test),
so the load generator does not share its event loop; `--balancer inline` runs it in this
process instead. The baseline is the raw JetStream request rate (nats-py `js.publish` + ack)
at the same concurrency, same server, same run, alternated with the end-to-end runs (best
of three each); the last line is the result for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

import msgspec
import nats
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.leader import BalancerSettings
from julia_chips.balancer.model.decide import decide
from julia_chips.balancer.model.state import BalancerState, apply_chip_event, evolve
from julia_chips.balancer.runner import BalancerRunner
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.clock import FixedClock
from julia_chips.contract import chip as ev
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import JuliaHeader, Stream, route_events
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.jetstream.pull_feed import PullFeed
from julia_chips.jetstream.reply_inbox import ReplyInbox
from julia_chips.jetstream.streams import ensure_streams, stream_configs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fleet builders
from tests.fakes import FakeSender
from tests.unit.balancer_builders import NOW, chip_history

PHONE = "+5511987654321"
ROUNDS = 3  # raw and end-to-end runs, alternated: the best of each


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
    await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"]))  # idempotent
    body = b'{"doctor_id":"doc1","text":"oi"}'
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            await js.publish(f"bench.raw.{n % 1000}", body)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


def request_stream() -> StreamConfig:
    """ROUTE_CMDS's configuration (a work queue) under another name and subjects."""
    route_cmds = next(c for c in stream_configs(1) if c.name == Stream.ROUTE_CMDS)
    return dataclasses.replace(route_cmds, name="BENCH_REQ", subjects=["bench.req.>"])


def echo_consumer(url: str) -> None:
    """The bare request path through JetStream, in its own process as the balancer is: pull
    each stored request, answer its reply subject, ack it; no routing, no events."""
    answer = ENCODER.encode(rt.RouteReply(ok=True, chip_id="chip-0001", status="dispatched"))

    async def main() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_consumer("BENCH_REQ", ConsumerConfig(
            durable_name="echo", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=4096))

        async def reply(m: nats.aio.msg.Msg) -> None:
            await nc.publish((m.headers or {})[JuliaHeader.REPLY_TO], answer)
            await m.ack()
        await PullFeed(nc, "BENCH_REQ", "echo", reply).start()
        await asyncio.Event().wait()  # until terminated
    uvloop.run(main())


async def raw_request_rate(nc: nats.NATS, requests: int, concurrency: int) -> float:
    """The same requests as `end_to_end` sends (same client code path: store with a reply
    subject, wait on a shared inbox), answered by `echo_consumer` instead of the balancer."""
    js = nc.jetstream()
    inbox: ReplyInbox[rt.RouteReply] = ReplyInbox(nc, msgspec.json.Decoder(rt.RouteReply).decode)
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            request = rt.SendRequest(command_id=uuid.uuid4().hex, doctor_id=f"doc{n}",
                                     doctor_phone=PHONE, text="oi", kind="reply", consented=True)

            def store(reply_to: str, request: rt.SendRequest = request,
                      subject: str = f"bench.req.{n % 1000}") -> Awaitable[object]:
                body = ENCODER.encode(msgspec.structs.replace(request, reply_to=reply_to))
                return js.publish(subject, body, headers={JuliaHeader.REPLY_TO: reply_to})
            reply = await inbox.request(store, timeout=60)
            assert reply.ok, reply
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = requests / (time.perf_counter() - started)
    await inbox.close()
    return rate


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


async def end_to_end(nc: nats.NATS, doctors: int, requests: int, concurrency: int,
                     holders: dict[str, str], seed: int) -> tuple[float, float, float]:
    """Sends through `RouteClient`; `holders` learns each doctor's chip from the replies."""
    client = RouteClient(nc)
    latencies: list[float] = []
    rng = random.Random(2 + seed)
    queue = [f"doc{rng.randrange(doctors)}" for _ in range(requests)]

    async def worker() -> None:
        while queue:
            doctor_id = queue.pop()
            t0 = time.perf_counter()
            reply = await client.send(doctor_id, PHONE, "oi", "reply", True, timeout=60)
            assert reply.ok and reply.chip_id, reply
            holders[doctor_id] = reply.chip_id
            latencies.append(time.perf_counter() - t0)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = requests / (time.perf_counter() - started)
    return rate, pct(latencies, 0.5) * 1e3, pct(latencies, 0.99) * 1e3


async def failover(nc: nats.NATS, js: nats.js.JetStreamContext, expected: int,
                   runner: BalancerRunner | None) -> tuple[float, int]:
    """Cool chip-0000; seconds from its `Cooled` being stored to the last of its `expected`
    conversations' `ConversationReassigned` seen on `route.evt.>` (in-process: the runner's
    own timing, which starts when it receives the event)."""
    moved = 0
    done = asyncio.Event()

    async def on_event(m: nats.aio.msg.Msg) -> None:
        nonlocal moved
        event = rt.decode_route_event(m.data)
        if isinstance(event, rt.ConversationReassigned) and event.from_chip_id == "chip-0000":
            moved += 1
            if moved >= expected:
                done.set()
    sub = await nc.subscribe("route.evt.>", cb=on_event)
    log = JetStreamChipEventLog(js)
    cooled = ev.Cooled(event_id="bench-cool", chip_id="chip-0000", command_id="bench",
                       occurred_at=NOW, reason="bench", until=NOW + timedelta(hours=1),
                       previous_status=Status.ACTIVE)
    await log.append("chip-0000", [cooled], await log.last_seq("chip-0000"))
    started = time.perf_counter()
    await asyncio.wait_for(done.wait(), 60)
    seconds = time.perf_counter() - started
    await sub.unsubscribe()
    if runner is not None:
        while not runner.failovers:  # noqa: ASYNC110 - polling a list the runner appends to
            await asyncio.sleep(0.01)
        return runner.failovers[-1].seconds, runner.failovers[-1].reassigned
    return seconds, moved


def start_balancer(url: str, chips: int, profile: Path | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": url, "MAX_CHIPS_ACTIVE": str(chips),
           "JULIA_LEASE_TTL": "5"}
    command = [sys.executable, "-m", "tests.integration.balancer_process", "--holder", "bench"]
    if profile is not None:
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy), "record", "--format", "raw", "--rate", "200", "-o", str(profile),
                   "--", *command]
    repo = Path(__file__).resolve().parents[1]  # where `tests` imports from
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=repo)


async def wait_for_leader(nc: nats.NATS) -> None:
    """Until the balancer answers: it has rebuilt and consumes `route.cmd.>`."""
    reply = await RouteClient(nc).send("warmup", PHONE, "oi", "reply", True, timeout=120)
    assert reply.ok, reply


async def wait_for_calm(js: nats.js.JetStreamContext) -> None:
    """Until every request the balancer took has its outcome stored (none still in flight)."""
    while True:
        info = await js.stream_info(str(Stream.ROUTE_CMDS))
        if info.state.messages == 0:
            return
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    rate, p50, p99 = bench_decisions(args.chips, args.doctors)
    print(f"decisions: {args.chips} chips, {args.doctors} doctors, {2 * args.doctors} decisions:"
          f" {rate:,.0f}/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms (target p99 <= 1 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp) / "nats", 16)
        server.start()
        process: subprocess.Popen[bytes] | None = None
        try:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await ensure_streams(js, lease_ttl=5.0)
            await seed(js, args.chips, args.hot)
            runner: BalancerRunner | None = None
            task: asyncio.Task[None] | None = None
            if args.balancer == "inline":
                settings = BalancerSettings(max_active=args.chips, lease_ttl=5.0)
                runner = BalancerRunner(nc, FixedClock(NOW), settings, FakeSender())
                task = asyncio.create_task(runner.run())
            else:
                process = start_balancer(server.url, args.chips, args.profile)
            await wait_for_leader(nc)
            await js.add_stream(request_stream())
            echo = multiprocessing.get_context("spawn").Process(
                target=echo_consumer, args=(server.url,), daemon=True)
            echo.start()
            await raw_request_rate(nc, 500, args.concurrency)  # warm-up: the echo is up
            holders: dict[str, str] = {}
            pubs, raws, runs = [], [], []
            for n in range(ROUNDS):  # alternate, so a noisy neighbour hits all alike
                pubs.append(await raw_rate(js, args.requests, args.concurrency))
                raws.append(await raw_request_rate(nc, args.requests, args.concurrency))
                runs.append(await end_to_end(nc, args.doctors, args.requests, args.concurrency,
                                             holders, seed=n))
                await wait_for_calm(js)
            echo.terminate()
            baseline, publish_only = max(raws), max(pubs)
            value, e2e50, e2e99 = max(runs)
            print(f"end-to-end ({args.balancer} balancer): {args.requests} requests, concurrency"
                  f" {args.concurrency}: {value:,.0f}/s, p50 {e2e50:.1f} ms, p99 {e2e99:.1f} ms"
                  f" (best of {', '.join(f'{r[0]:,.0f}' for r in runs)})")
            print(f"raw JetStream request (stored, pulled by a bare consumer process, answered):"
                  f" {baseline:,.0f}/s (best of {', '.join(f'{r:,.0f}' for r in raws)}); "
                  f"ratio {value / baseline:.3f}")
            print(f"raw JetStream publish+ack alone: {publish_only:,.0f}/s (best of "
                  f"{', '.join(f'{r:,.0f}' for r in pubs)}); ratio {value / publish_only:.3f}")
            await wait_for_calm(js)
            expected = args.hot + sum(chip == "chip-0000" for chip in holders.values())
            seconds, reassigned = await failover(nc, js, expected, runner)
            print(f"failover: {reassigned} conversations reassigned in {seconds:.3f} s "
                  "(target <= 2 s)")
            if runner is not None and task is not None:
                runner.stop()
                await task
            await nc.close()
        finally:
            if process is not None:
                process.send_signal(2)  # SIGINT: py-spy writes its profile on the way out
                process.wait(30)
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
    parser.add_argument("--balancer", choices=["process", "inline"], default="process")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the balancer process into this file (collapsed stacks)")
    uvloop.run(main(parser.parse_args()))  # like the other benchmarks and `julia-chips run`
