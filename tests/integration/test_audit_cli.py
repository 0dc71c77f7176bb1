"""`julia-chips audit` and `projections rebuild` as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from rich.console import Console

from julia_chips.cli.projections import audit
from julia_chips.db.migrate import migrate_url
from julia_chips.infrastructure import Endpoints
from julia_chips.projections.service import Projections
from tests.integration.test_projections_lifecycles import caught_up, drive_chips


async def test_audit_prints_history_and_flags_a_tampered_row(
        nc: NATS, js: JetStreamContext, nats_url: str, database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url)
    projections.start()
    chips = await drive_chips(nc, chips=3, steps=8, seed=9)
    await caught_up(js, database_url)
    await projections.stop()
    endpoints = Endpoints(nats_url=nats_url, database_url=database_url)
    console = Console(record=True, width=200)
    assert await audit(endpoints, chips[0], console) == 0
    text = console.export_text()
    assert "Provisioned" in text and "agrees" in text and "+55 11 ****" in text
    conn = await asyncpg.connect(database_url)
    await conn.execute("UPDATE julia_chips SET status = 'retired' WHERE id = $1",
                       uuid.UUID(chips[0]))
    await conn.close()
    console = Console(record=True, width=200)
    assert await audit(endpoints, chips[0], console) == 1
    assert "differs" in console.export_text()
    assert await audit(endpoints, str(uuid.uuid4()), Console(record=True)) == 2
    assert await audit(endpoints, "nope", Console(record=True)) == 2

    # The CLI: a rebuild repairs the tampered row, and `db migrate` finds nothing to do.
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "julia_chips", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    rebuilt = await asyncio.to_thread(cli, "projections", "rebuild", "julia_chips")
    assert rebuilt.returncode == 0 and "rebuilt julia_chips, chip_warmer_metrics" in (
        rebuilt.stdout), rebuilt.stdout + rebuilt.stderr
    assert (await asyncio.to_thread(cli, "audit", chips[0])).returncode == 0
    migrated = await asyncio.to_thread(cli, "db", "migrate")
    assert "up to date" in migrated.stdout
    unknown = await asyncio.to_thread(cli, "projections", "rebuild", "nope")
    assert unknown.returncode == 2
