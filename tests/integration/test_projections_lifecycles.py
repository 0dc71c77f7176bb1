"""Rebuild equals incremental: a few hundred chips through random lifecycles via the real
worker, projected incrementally, then rebuilt from the stream; every table must match.

Also home of the drivers the other projection tests share (random lifecycles, synthetic
histories, table checksums, catching up).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.chip.model.lifecycle import ChipRuleBroken, ChipState, decide, evolve
from julia_chips.clock import FixedClock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.codec import encode_event, event_headers
from julia_chips.contract.fleet import FleetBrakeEngaged, FleetBrakeReleased
from julia_chips.contract.subjects import FLEET_BRAKE, Stream, chip_events
from julia_chips.db.migrate import migrate_url
from julia_chips.projections import checkpoints
from julia_chips.projections.audit import compare, read_row
from julia_chips.projections.catalog import PROJECTIONS
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import Projections
from julia_chips.warmer.model.policy import DEFAULT_WARMUP, WarmupPolicy
from tests.integration.workers import running_worker

TABLES = {"julia_chips": "id", "chip_warmer_metrics": "id", "fleet_brake": "id",
          "doctors": "doctor_id", "route_backlog": "request_id",
          "message_attempts": "attempt_id"}
T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)


def random_commands(rng: random.Random, n: int) -> Iterator[cmd.AnyChipCommand]:
    """A walk that mostly follows the happy path, with coolings, bans and retirements."""
    yield cmd.Provision(command_id="p", phone_number=f"+55119{rng.randrange(10**8):08d}",
                        ddd=11, salvy_account_id="acc-1")
    yield cmd.StartActivation(command_id="s", host="vps-1")
    yield cmd.CompleteActivation(command_id="c", instance=f"inst-{rng.randrange(10**6)}",
                                 host="vps-1")
    day = 1
    for i in range(n):
        roll = rng.random()
        c = f"k{i}"
        if roll < 0.35:
            sent = rng.randrange(0, 30)
            yield cmd.ObserveTraffic(command_id=c, sent=sent, delivered=sent,
                                     replied=sent // rng.choice((2, 30)), received=sent // 3,
                                     health_score=rng.choice((None, round(rng.random(), 4))))
        elif roll < 0.6:
            yield cmd.CloseWarmDay(command_id=c, day_number=day)
            day += 1
        elif roll < 0.7:
            yield cmd.PutInService(command_id=c)
        elif roll < 0.78:
            yield cmd.Cool(command_id=c, reason="rate limited")
        elif roll < 0.86:
            yield cmd.Resume(command_id=c)
        elif roll < 0.88:
            yield cmd.ReportBan(command_id=c, reason="banned", evidence="403 from gateway")
        elif roll < 0.9:
            yield rng.choice(_relinks(c, i))
        elif roll < 0.94:
            yield cmd.Reinstate(command_id=c)
        elif roll < 0.96:
            yield cmd.Retire(command_id=c, reason="done")
        else:
            yield cmd.TakeOutOfService(command_id=c, reason="rotation")


def _relinks(c: str, i: int) -> list[cmd.AnyChipCommand]:
    """A logout and what the activator does about it (issue 14), in any order."""
    attempt = i % 3 + 1
    return [cmd.Relink(command_id=c, reason="logged out", evidence="close 401"),
            cmd.StartRelink(command_id=c, attempt=attempt, pairing_code=f"CODE{i:04d}"),
            cmd.StartRelink(command_id=c, attempt=attempt, qr=f"2@qr-{i}"),
            cmd.CompleteRelink(command_id=c),
            cmd.FailRelink(command_id=c, attempt=attempt, reason="expired",
                           give_up=attempt == 3)]


async def drive_chips(nc: NATS, chips: int, steps: int, seed: int = 7) -> list[str]:
    """Random lifecycles through the real worker; returns the chip ids."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(chips)]
    client = ChipClient(nc)
    clock = FixedClock(T0)
    gate = asyncio.Semaphore(64)

    async def one(chip_id: str, commands: list[cmd.AnyChipCommand]) -> None:
        async with gate:
            for command in commands:
                await client.send(chip_id, command, timeout=30)
                clock.advance(timedelta(minutes=1))

    async with running_worker(nc, clock):
        await asyncio.gather(*(one(c, list(random_commands(rng, steps))) for c in ids))
    await client.close()
    return ids


def decided_history(chip_id: str, commands: Iterable[cmd.AnyChipCommand], start: datetime,
                    gap: Callable[[], timedelta], policy: WarmupPolicy = DEFAULT_WARMUP
                    ) -> tuple[ChipState, list[AnyChipEvent]]:
    """What the actor decides for `commands`, each `gap()` after the last; refusals skipped."""
    state, events, now = ChipState(chip_id=chip_id), [], start
    for command in commands:
        now += gap()
        state, decided = decided_step(state, command, now, policy)
        events.extend(decided)
    return state, events


def decided_step(state: ChipState, command: cmd.AnyChipCommand, now: datetime,
                 policy: WarmupPolicy = DEFAULT_WARMUP
                 ) -> tuple[ChipState, list[AnyChipEvent]]:
    """The actor's decision on one command, folded into `state`; a refusal changes nothing."""
    try:
        events = decide(state, command, now, policy)
    except ChipRuleBroken:
        return state, []
    for event in events:
        state = evolve(state, event)
    return state, events


def synthetic_history(chips: int, steps: int, seed: int = 11
                      ) -> list[AnyChipEvent]:
    """Events as the actor would decide them, interleaved across chips (no worker needed)."""
    rng = random.Random(seed)
    policy = WarmupPolicy(min_days=3, max_days=6)
    per_chip: list[list[AnyChipEvent]] = []
    for _ in range(chips):
        chip_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        _, events = decided_history(chip_id, random_commands(rng, steps), T0,
                                    lambda: timedelta(minutes=rng.randrange(1, 600)), policy)
        per_chip.append(events)
    merged: list[AnyChipEvent] = []
    while any(per_chip):
        chip = rng.choice([c for c in per_chip if c])
        merged.append(chip.pop(0))
    return merged


async def publish_events(js: JetStreamContext, events: list[AnyChipEvent],
                         chunk: int = 500) -> None:
    for start in range(0, len(events), chunk):
        await asyncio.gather(*(
            js.publish(chip_events(e.chip_id), encode_event(e), headers=event_headers(e))
            for e in events[start:start + chunk]))


async def publish_brake(js: JetStreamContext) -> None:
    engaged = FleetBrakeEngaged(event_id="b1", occurred_at=T0, reason="ban wave",
                                bans_in_window=3, window_seconds=3600, until=T0 + timedelta(1))
    released = FleetBrakeReleased(event_id="b2", occurred_at=T0 + timedelta(hours=2),
                                  reason="operator")
    for event in (engaged, released, engaged):
        await js.publish(FLEET_BRAKE, encode_event(event))  # type: ignore[arg-type]


async def checksums(database_url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every read-model table, rows in key order."""
    conn = await asyncpg.connect(database_url)
    try:
        out = {}
        for table, key in TABLES.items():
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY {key}), ''))"
                f" AS sum FROM {table} t")
            out[table] = (row["n"], row["sum"])
        return out
    finally:
        await conn.close()


async def caught_up(js: JetStreamContext, database_url: str, timeout: float = 60) -> None:
    """Wait until every projection's checkpoint is at its stream's last sequence."""
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(int(timeout * 20)):
            done = await checkpoints.read_all(conn)
            lasts = {str(s): (await js.stream_info(str(s))).state.last_seq
                     for s in {p.stream for p in PROJECTIONS.values()}}
            if all(done.get(n, 0) >= lasts[str(p.stream)] for n, p in PROJECTIONS.items()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"projections behind: {done} vs {lasts}")
    finally:
        await conn.close()


async def assert_rows_match_events(js: JetStreamContext, database_url: str,
                                   chip_ids: list[str]) -> None:
    """Every chip's row equals the actor's fold of its events (the audit's check)."""
    from julia_chips.chip.model.lifecycle import fold

    log = JetStreamChipEventLog(js)
    conn = await asyncpg.connect(database_url)
    try:
        for chip_id in chip_ids:
            history = await log.load(chip_id)
            state = fold(chip_id, [s.event for s in history])
            row = await read_row(conn, chip_id)
            assert compare(state, row, history[-1].seq if history else 0) == [], chip_id
    finally:
        await conn.close()


async def test_rebuild_equals_incremental(nc: NATS, js: JetStreamContext,
                                          database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=100)
    projections.start()
    try:
        ids = await drive_chips(nc, chips=250, steps=14)
        await publish_brake(js)
        await caught_up(js, database_url)
    finally:
        await projections.stop()
    incremental = await checksums(database_url)
    assert incremental["julia_chips"][0] == len(ids)
    assert incremental["chip_warmer_metrics"][0] > 100
    await assert_rows_match_events(js, database_url, ids[:60])
    report = await rebuild(nc, database_url, show_progress=False)
    assert report.events == (await js.stream_info(str(Stream.CHIP_EVENTS))).state.last_seq + 3
    assert await checksums(database_url) == incremental
