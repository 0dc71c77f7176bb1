"""The projection process killed mid-batch, and PostgreSQL stopped while events flow: the
read models end up exactly as a clean rebuild would make them, checkpoint included."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import WarmDayCompleted
from julia_chips.contract.subjects import Stream
from julia_chips.db.migrate import migrate_url
from julia_chips.projections import checkpoints
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import Projections
from tests.conftest import LEASE_TTL
from tests.integration.test_projections_lifecycles import (
    caught_up,
    checksums,
    publish_events,
    synthetic_history,
)


def _start_projector(nats_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url,
           "JULIA_LEASE_TTL": str(LEASE_TTL)}  # the bucket's: a killed holder's lease expires
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "julia_chips", "projections", "run", "--batch", "40"],
            env=env, stdout=out, stderr=subprocess.STDOUT)


async def _checkpoint(database_url: str, name: str = "julia_chips") -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await checkpoints.read(conn, name)
    finally:
        await conn.close()


async def _assert_exact(js: JetStreamContext, nc: NATS, database_url: str,
                        events: list[object]) -> None:
    """Counts match the history, and the tables equal a from-scratch rebuild."""
    chips = {e.chip_id for e in events}  # type: ignore[attr-defined]
    days = sum(isinstance(e, WarmDayCompleted) for e in events)
    projected = await checksums(database_url)
    assert projected["julia_chips"][0] == len(chips)
    assert projected["chip_warmer_metrics"][0] == days
    last = (await js.stream_info(str(Stream.CHIP_EVENTS))).state.last_seq
    conn = await asyncpg.connect(database_url)
    try:
        assert await checkpoints.read(conn, "julia_chips") == last
        assert await checkpoints.read(conn, "chip_warmer_metrics") == last
        assert await conn.fetchval("SELECT max(last_seq) FROM julia_chips") == last
    finally:
        await conn.close()
    await rebuild(nc, database_url, show_progress=False)
    assert await checksums(database_url) == projected


@pytest.mark.slow
async def test_sigkill_mid_batch_loses_and_duplicates_nothing(
        nc: NATS, js: JetStreamContext, nats_url: str, database_url: str, tmp_path: Path
) -> None:
    await migrate_url(database_url)
    # Enough history that four kills land mid-stream even on an idle machine.
    events = synthetic_history(chips=400, steps=60)
    await publish_events(js, events)
    log = tmp_path / "projector.log"
    rng = random.Random(5)
    kills = 0
    for _ in range(4):
        proc = _start_projector(nats_url, database_url, log)
        before = await _checkpoint(database_url)
        # Kill once it has committed something past where it started: mid-stream (it first
        # waits out the killed one's lease).
        for _ in range(1000):
            if await _checkpoint(database_url) > before:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert await _checkpoint(database_url) < len(events), "killed too late to prove anything"
    proc = _start_projector(nats_url, database_url, log)
    try:
        await caught_up(js, database_url, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0, log.read_text()[-3000:]
    assert kills == 4
    await _assert_exact(js, nc, database_url, events)


@pytest.mark.slow
async def test_postgres_outage_pauses_then_catches_up(
        nc: NATS, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from julia_chips.embedded import postgres_server
    server = postgres_server.EmbeddedPostgres(tmp_path / "pg" / "data", fast=True)
    url = await asyncio.to_thread(server.start)
    await migrate_url(url)
    events = synthetic_history(chips=200, steps=25, seed=23)
    half = len(events) // 2
    projections = Projections(nc, url, batch=50)
    projections.start()
    try:
        flowing = asyncio.create_task(publish_events(js, events[:half], chunk=50))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(server.stop)  # while events flow and batches commit
        await flowing
        await publish_events(js, events[half:])
        await asyncio.sleep(1.0)  # the runners back off meanwhile
        port = server.port
        monkeypatch.setattr(postgres_server, "free_port", lambda: port)
        await asyncio.to_thread(server.start)
        await caught_up(js, url, timeout=60)
    finally:
        await projections.stop()
    try:
        await _assert_exact(js, nc, url, events)
    finally:
        await asyncio.to_thread(server.stop)
