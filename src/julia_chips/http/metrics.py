"""`/metrics`: fleet gauges read at scrape time, plus the process's pipeline counters.

The fleet gauges are computed per scrape into a throwaway registry, so they are always the
read model's current figures and no global gauge can drift or leak chips that are gone.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from julia_chips.http.health import projection_lags
from julia_chips.http.keys import CLOCK, NATS_CONN, POOL
from julia_chips.http.params import NoQuery, query
from julia_chips.projections.distribution import distribution
from julia_chips.projections.fleet import fleet_summary


async def _fleet_registry(app: web.Application) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    summary = await fleet_summary(app[POOL], app[CLOCK].now())
    by = summary.by_status
    Gauge("chips_total", "Chips in the read model", registry=registry).set(summary.chips_total)
    Gauge("chips_active", "Chips in service", registry=registry).set(by[Status.ACTIVE])
    Gauge("chips_warming", "Chips warming up", registry=registry).set(by[Status.WARMING])
    Gauge("chips_banned_last_7d", "Chips banned in the last 7 days",
          registry=registry).set(summary.banned_last_7d)
    Gauge("fleet_brake_engaged", "1 while the fleet brake stops prospecting",
          registry=registry).set(1 if summary.brake.engaged else 0)
    # Named apart from the leader's own julia_balancer_backlog*: this is the read model's
    # view, the same in every process, and both may be served by one process.
    Gauge("balancer_backlog_requests", "Send requests waiting in the balancer's backlog",
          registry=registry).set(summary.backlog.waiting)
    Gauge("balancer_backlog_oldest_seconds", "Age of the oldest waiting send request",
          registry=registry).set(summary.backlog.oldest_age_seconds)
    by_status = Gauge("chips_by_status", "Chips per state", ["status"], registry=registry)
    for status, count in by.items():
        by_status.labels(status=status).set(count)
    await _per_chip(app, registry)
    lag = Gauge("julia_projection_lag_events", "Stream events not yet in the read model",
                ["projection"], registry=registry)
    for name, figures in (await projection_lags(app)).items():
        lag.labels(projection=name).set(figures.lag)
    info = await app[NATS_CONN].jetstream().stream_info(str(Stream.DEAD_LETTER))
    Gauge("julia_dead_letters_stored", "Messages held in the DEAD_LETTER stream",
          registry=registry).set(info.state.messages or 0)
    return registry


async def _per_chip(app: web.Application, registry: CollectorRegistry) -> None:
    """Gauges labelled by chip: warm-up progress of the warming ones, and the doctors each
    chip holds (every chip in `julia_chips`, zeros included, as `/distribution` lists them)."""
    progress = Gauge("warmer_progress", "Warm-up progress of warming chips, 0..1", ["chip_id"],
                     registry=registry)
    rows = await app[POOL].fetch(
        "SELECT id, warmer_progress FROM julia_chips WHERE status = $1", Status.WARMING.value)
    for row in rows:
        progress.labels(chip_id=str(row["id"])).set(row["warmer_progress"] or 0.0)
    held = Gauge("chip_doctors", "Doctors whose conversation the chip holds", ["chip_id"],
                 registry=registry)
    for share in (await distribution(app[POOL])).chips:
        held.labels(chip_id=share.chip_id).set(share.doctors)


async def metrics(request: web.Request) -> web.Response:
    query(request, NoQuery)
    fleet = generate_latest(await _fleet_registry(request.app))
    body = fleet + generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
