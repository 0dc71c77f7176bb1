"""The read API's routes, declared once: the aiohttp table and `/openapi.json` come from here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from julia_chips.contract.route import DoctorId
from julia_chips.http import chip_events, chips, distribution, doctors, health, metrics
from julia_chips.http.auth import Access
from julia_chips.http.params import ChipIdParam, ChipsQuery, EventsQuery, NoQuery, PageQuery
from julia_chips.http.responses import (
    ChipPage,
    ChipsHealth,
    ChipView,
    EventsPage,
    Health,
    WarmerMetricsPage,
)
from julia_chips.projections.distribution import Distribution
from julia_chips.projections.doctors import DoctorView


class Route(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    query: type[Any] = NoQuery
    response: type[Any] | None = None  # None: text (Prometheus exposition)
    statuses: tuple[int, ...] = (200, 400, 401)
    access: Access = Access.READ  # the token it needs (http/auth.py)
    method: str = "GET"
    id_type: Any = ChipIdParam  # what `{id}` in the path must be (OpenAPI schema)


READ_ROUTES: tuple[Route, ...] = (
    Route(path="/health", handler=health.health, response=Health, statuses=(200, 400, 503),
          access=Access.OPEN, summary="NATS and PostgreSQL reachable (503 when one is not)"),
    Route(path="/health/chips", handler=health.chips_health, response=ChipsHealth,
          statuses=(200, 400, 401, 503),
          summary="Fleet summary: chips by state, bans in the last 7 days, brake, balancer "
          "backlog, projection lag"),
    Route(path="/chips", handler=chips.list_chips, query=ChipsQuery, response=ChipPage,
          statuses=(200, 400, 401, 503),
          summary="Chips, optionally by status; pages by limit/offset or cursor"),
    Route(path="/chips/{id}", handler=chips.get_chip, response=ChipView,
          statuses=(200, 400, 401, 404, 503),
          summary="One chip's read-model row, with the doctors it holds (ids, not phones)"),
    Route(path="/chips/{id}/events", handler=chip_events.list_events, query=EventsQuery,
          response=EventsPage, statuses=(200, 400, 401, 404, 503),
          summary="The chip's events replayed from JetStream, from a sequence or a time"),
    Route(path="/chips/{id}/warmer-metrics", handler=chips.warmer_metrics, query=PageQuery,
          response=WarmerMetricsPage, statuses=(200, 400, 401, 404, 503),
          summary="One row per closed warm day, oldest first"),
    Route(path="/doctors/{id}", handler=doctors.get_doctor, response=DoctorView,
          id_type=DoctorId, statuses=(200, 400, 401, 404, 503),
          summary="One doctor: chip, consent, opt-out, quarantine, assignments, messages"),
    Route(path="/distribution", handler=distribution.get_distribution, response=Distribution,
          statuses=(200, 400, 401, 503),
          summary="Doctors per chip (every chip, zeros included) and per chip state"),
    Route(path="/metrics", handler=metrics.metrics, statuses=(200, 400, 401, 503),
          summary="Prometheus exposition: fleet gauges and pipeline figures"),
)


def route_table(routes: tuple[Route, ...]) -> list[web.RouteDef]:
    return [web.route(r.method, r.path, r.handler) for r in routes]


def declared_access(routes: tuple[Route, ...]) -> dict[str, Access]:
    """Path template -> the access its route declares, for `auth.token_guard`."""
    return {r.path: r.access for r in routes} | {"/openapi.json": Access.OPEN}
