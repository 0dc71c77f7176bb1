"""Projection benchmark: rebuild rate vs the raw rates of its two halves, and projection lag.

    .venv/bin/python bench/projections.py [--events 200000] [--chips 2000] [--lag-rate 2000]

Embedded nats-server and PostgreSQL (fsync off) in a temporary folder. The rebuild is
compared with (a) reading the same stream with an ordered consumer and nothing else and
(b) `copy_records_to_table` of one row per event; target: >= 0.5 x the slower of the two.
The lag is the time from an event's publish ack to its checkpoint (same transaction as its
row) being visible, with events appended at `--lag-rate` per second.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from julia_chips.chip.model.lifecycle import ChipState
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.codec import encode_event, event_headers
from julia_chips.contract.subjects import Stream, chip_events
from julia_chips.db.migrate import migrate_url
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import Projections
from julia_chips.warmer.model.policy import WarmupPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' history helpers
from tests.integration.test_projections_lifecycles import decided_step, publish_events

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
POLICY = WarmupPolicy(min_days=7, max_days=14)


def chip_history(chip_id: str, n: int, rng: random.Random) -> list[AnyChipEvent]:
    """About `n` events a real actor would decide: mostly traffic, a day close every ~8."""
    state, out, now, day = ChipState(chip_id=chip_id), [], T0, 1
    script: list[cmd.AnyChipCommand] = [
        cmd.Provision(command_id="p", phone_number="+5511912345678", ddd=11),
        cmd.StartActivation(command_id="s", host="vps-1"),
        cmd.CompleteActivation(command_id="c", instance=f"i-{chip_id[:8]}", host="vps-1")]
    i = 0
    while len(out) < n:
        i += 1
        if script:
            command = script.pop(0)
        elif i % 8 == 0 and state.status is not None and state.status.value == "warming":
            command = cmd.CloseWarmDay(command_id=f"d{i}", day_number=day)
            day += 1
        elif i % 97 == 0:
            command = cmd.Cool(command_id=f"c{i}", reason="rate limited")
        elif i % 98 == 0:
            command = cmd.Resume(command_id=f"r{i}")
        elif i % 50 == 0 and state.status is not None and state.status.value == "ready":
            command = cmd.PutInService(command_id=f"a{i}")
        else:
            sent = rng.randrange(5, 40)
            command = cmd.ObserveTraffic(command_id=f"t{i}", sent=sent, delivered=sent,
                                         replied=sent // 5, received=sent // 4)
        now += timedelta(minutes=17)
        state, events = decided_step(state, command, now, POLICY)
        out.extend(events)
    return out[:n]


def history(total: int, chips: int, seed: int = 1) -> list[AnyChipEvent]:
    rng = random.Random(seed)
    per = [chip_history(str(uuid.UUID(int=rng.getrandbits(128), version=4)), total // chips,
                        rng) for _ in range(chips)]
    merged: list[AnyChipEvent] = []
    for round_ in range(max(len(p) for p in per)):  # round robin: chips interleave
        merged.extend(p[round_] for p in per if round_ < len(p))
    return merged


async def raw_read_rate(nc: nats.NATS, total: int) -> float:
    js = nc.jetstream()
    done = asyncio.get_running_loop().create_future()
    count = 0

    async def on_msg(msg: Msg) -> None:
        nonlocal count
        count += 1
        if count >= total and not done.done():
            done.set_result(None)

    started = time.perf_counter()
    sub = await js.subscribe("chip.evt.>", stream=str(Stream.CHIP_EVENTS), cb=on_msg,
                             ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
                             pending_msgs_limit=-1, pending_bytes_limit=-1)
    await done
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return total / elapsed


async def raw_copy_rate(url: str, events: list[AnyChipEvent]) -> float:
    """COPY one row per event (seq, chip, type, time, payload): what writing every event costs."""
    records = [(seq, uuid.UUID(e.chip_id), type(e).__name__, e.occurred_at, encode_event(e))
               for seq, e in enumerate(events, 1)]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_events; CREATE TABLE bench_events ("
                           "seq BIGINT, chip_id UUID, type TEXT, occurred_at TIMESTAMPTZ, "
                           "payload BYTEA)")
        started = time.perf_counter()
        await conn.copy_records_to_table("bench_events", records=records)
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_events")
    finally:
        await conn.close()
    return len(records) / elapsed


async def lag_p99(nc: nats.NATS, url: str, rate: int, seconds: float) -> tuple[float, int]:
    """p99 (ms) from publish ack to committed checkpoint, events appended at `rate`/s."""
    js = nc.jetstream()
    projections = Projections(nc, url)
    projections.start()
    conn = await asyncpg.connect(url)
    acked: dict[int, float] = {}
    lags: list[float] = []
    events = history(int(rate * seconds), max(1, rate // 10), seed=99)

    async def produce() -> None:
        started = time.perf_counter()
        for i in range(0, len(events), rate // 100):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            acks = await asyncio.gather(*(
                js.publish(chip_events(e.chip_id), encode_event(e), headers=event_headers(e))
                for e in events[i:i + rate // 100]))
            now = time.perf_counter()
            acked.update((a.seq, now) for a in acks)

    producer = asyncio.create_task(produce())
    seen = 0
    while not producer.done() or seen < max(acked, default=0):
        done = int(await conn.fetchval(
            "SELECT last_seq FROM projection_checkpoints WHERE name = 'julia_chips'") or 0)
        now = time.perf_counter()
        for seq in range(seen + 1, done + 1):
            if seq in acked:
                lags.append(now - acked.pop(seq))
        seen = max(seen, done)
        await asyncio.sleep(0.002)
    await conn.close()
    await projections.stop()
    return statistics.quantiles(lags, n=100)[98] * 1000, len(lags)


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-projections-"))
    server = EmbeddedNats(workdir / "nats", 16)
    nats_url = await asyncio.to_thread(server.start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from julia_chips.embedded.postgres_server import EmbeddedPostgres
    postgres = EmbeddedPostgres(workdir / "pg" / "data", fast=True)
    url = await asyncio.to_thread(postgres.start)
    try:
        nc = await nats.connect(nats_url)
        await ensure_streams(nc.jetstream())
        await migrate_url(url)
        started = time.perf_counter()
        events = history(args.events, args.chips)
        print(f"generated {len(events):,} events over {args.chips:,} chips "
              f"in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        await publish_events(nc.jetstream(), events, chunk=2000)
        print(f"published in {time.perf_counter() - started:.1f}s")
        read = await raw_read_rate(nc, len(events))
        print(f"raw ordered-consumer read: {read:,.0f} events/s")
        copy = await raw_copy_rate(url, events)
        print(f"raw copy_records_to_table: {copy:,.0f} rows/s")
        report = await rebuild(nc, url, show_progress=False)
        print(f"rebuild (all projections): {report.events:,} events in {report.seconds:.2f}s "
              f"= {report.rate:,.0f} events/s (target >= 20,000)")
        p99, samples = await lag_p99(nc, url, args.lag_rate, args.lag_seconds)
        print(f"projection lag at {args.lag_rate:,} events/s: p99 {p99:.1f} ms "
              f"({samples:,} events)")
        await nc.close()
        baseline = min(read, copy)
        print(f"result: projections value={report.rate:.0f} baseline={baseline:.0f} "
              f"ratio={report.rate / baseline:.3f} target=0.5")
    finally:
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--chips", type=int, default=2_000)
    parser.add_argument("--lag-rate", type=int, default=2_000, help="events appended per second")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
