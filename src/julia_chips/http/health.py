"""`/health` (are NATS and PostgreSQL reachable, are the parts running) and `/health/chips`
(the fleet summary)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from aiohttp import web

from julia_chips.http.errors import UNAVAILABLE
from julia_chips.http.keys import CLOCK, CONFIG, NATS_CONN, POOL, SUPERVISOR
from julia_chips.http.params import NoQuery, query
from julia_chips.http.responses import ChipsHealth, Health, ProjectionLag, json
from julia_chips.projections import checkpoints
from julia_chips.projections.catalog import PROJECTIONS
from julia_chips.projections.fleet import fleet_summary

PROBE_TIMEOUT = 2.0  # seconds: a health check that hangs is a failed one


async def _postgres_ok(app: web.Application) -> bool:
    with contextlib.suppress(*UNAVAILABLE):
        return bool(await asyncio.wait_for(app[POOL].fetchval("SELECT 1"), PROBE_TIMEOUT))
    return False


async def _nats_ok(app: web.Application) -> bool:
    nc = app[NATS_CONN]
    if not nc.is_connected:
        return False
    with contextlib.suppress(*UNAVAILABLE):
        await asyncio.wait_for(nc.flush(), PROBE_TIMEOUT)
        return True
    return False


async def health(request: web.Request) -> web.Response:
    """503 also when a supervised part has been down longer than `Config.part_grace`: a
    process whose warmer scheduler cannot start is not healthy because NATS answers."""
    query(request, NoQuery)
    nats_ok, pg_ok = await asyncio.gather(_nats_ok(request.app), _postgres_ok(request.app))
    supervisor = request.app.get(SUPERVISOR)
    parts = supervisor.status() if supervisor else {}
    parts_ok = not supervisor or not supervisor.down_longer_than(request.app[CONFIG].part_grace)
    ok = nats_ok and pg_ok and parts_ok
    return json(Health(status="ok" if ok else "degraded", nats=nats_ok, postgres=pg_ok,
                       parts=parts), status=200 if ok else 503)


async def projection_lags(app: web.Application, conn: asyncpg.Connection | None = None
                          ) -> dict[str, ProjectionLag]:
    """Per projection: committed sequence and events still to apply. `conn`: read the
    checkpoints in its transaction (the dashboard's snapshot) rather than from the pool."""
    done = await checkpoints.read_all(conn or app[POOL])
    js = app[NATS_CONN].jetstream()
    lags = {}
    last_by_stream: dict[str, int] = {}
    for name, projection in PROJECTIONS.items():
        stream = str(projection.stream)
        if stream not in last_by_stream:
            last_by_stream[stream] = int((await js.stream_info(stream)).state.last_seq or 0)
        seq = done.get(name, 0)
        lags[name] = ProjectionLag(last_seq=seq, lag=max(0, last_by_stream[stream] - seq))
    return lags


async def chips_health(request: web.Request) -> web.Response:
    query(request, NoQuery)
    summary = await fleet_summary(request.app[POOL], request.app[CLOCK].now())
    return json(ChipsHealth(fleet=summary, projections=await projection_lags(request.app)))
