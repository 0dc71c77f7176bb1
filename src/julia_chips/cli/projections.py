"""The operator commands behind `julia-chips db migrate`, `projections ...` and `audit`."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid

import asyncpg
from rich.console import Console

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.config import Config
from julia_chips.db.migrate import migrate_url
from julia_chips.infrastructure import (
    Endpoints,
    NatsIdentity,
    connect_nats,
    connect_nats_once,
    nats_identity,
)
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.projections.audit import print_audit, read_row
from julia_chips.projections.catalog import PROJECTIONS
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import run_projections

log = logging.getLogger(__name__)


async def db_migrate(endpoints: Endpoints) -> int:
    applied = await migrate_url(endpoints.database_url)
    print(f"applied: {', '.join(applied)}" if applied else "database up to date")
    return 0


async def projections_rebuild(endpoints: Endpoints, name: str | None,
                              identity: NatsIdentity | None = None) -> int:
    if name is not None and name not in PROJECTIONS:
        print(f"unknown projection {name!r}; known: {', '.join(PROJECTIONS)}")
        return 2
    await migrate_url(endpoints.database_url)
    nc = await connect_nats_once(endpoints.nats_url, identity)
    try:
        report = await rebuild(nc, endpoints.database_url, name)
    finally:
        await nc.close()
    print(f"rebuilt {', '.join(report.projections)}: {report.events} events in "
          f"{report.seconds:.1f}s ({report.rate:,.0f} events/s)")
    return 0


async def projections_run(endpoints: Endpoints, batch: int, config: Config) -> int:
    """Only the projections, until SIGINT/SIGTERM (apart from the rest, and the crash tests);
    they run while this process holds the `projections` lease."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await migrate_url(endpoints.database_url)
    nc = await connect_nats(endpoints.nats_url, nats_identity(config))
    await ensure_streams(nc.jetstream(), config.replicas, config.lease_ttl,
                         config.ledger_max_age_days, config.stream_limits)
    await run_projections(nc, endpoints.database_url, stop, config.lease_ttl, batch)
    await nc.drain()
    return 0


async def audit(endpoints: Endpoints, chip_id: str, console: Console | None = None,
                identity: NatsIdentity | None = None) -> int:
    """0 when the read model agrees with the events, 1 when not, 2 for an unknown chip."""
    console = console or Console()
    try:
        chip_id = str(uuid.UUID(chip_id))
    except ValueError:
        console.print(f"[red]{chip_id!r} is not a chip id (a UUID)[/red]")
        return 2
    nc = await connect_nats_once(endpoints.nats_url, identity)
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        history = await JetStreamChipEventLog(nc.jetstream()).load(chip_id)
        if not history:
            console.print(f"[red]chip {chip_id} has no events[/red]")
            return 2
        row = await read_row(conn, chip_id)
    finally:
        await conn.close()
        await nc.close()
    differences = print_audit(console, chip_id, history, row)
    if differences:
        console.print(f"[red]read model differs from the events in {len(differences)} "
                      "field(s)[/red]")
        return 1
    console.print("[green]read model agrees with the events[/green]")
    return 0
