"""The API's routes, declared once: the aiohttp table and `/openapi.json` come from here.

`READ_ROUTES` read (`GET`); `OPERATOR_ROUTES` write (`POST /operator/...`, the operator token);
`DASHBOARD_ROUTES` are the dashboard's pages, assets and live feed (`http/dashboard/`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from julia_chips.contract import operations as ops
from julia_chips.contract.fleet import BrakeReleaseReply
from julia_chips.contract.route import DoctorId, RouteReply
from julia_chips.http import (
    chip_events,
    chips,
    distribution,
    doctors,
    health,
    metrics,
    operator,
    operator_desk,
)
from julia_chips.http.auth import Access
from julia_chips.http.dashboard import feed, pages
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
    response: type[Any] | None = None  # None: text of `media_type` (Prometheus, HTML, SSE)
    media_type: str = "text/plain"  # the 200's content type when `response` is None
    statuses: tuple[int, ...] = (200, 400, 401)
    access: Access = Access.READ  # the token it needs (http/auth.py)
    method: str = "GET"
    id_type: Any = ChipIdParam  # what `{id}` in the path must be (OpenAPI schema)
    body: type[Any] | None = None  # the JSON request body (`POST`), decoded strictly


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

# A chip move may be refused by the actor (409); no 404: the actor answers for any chip id.
_MOVE_STATUSES = (200, 400, 401, 403, 409, 503)

OPERATOR_ROUTES: tuple[Route, ...] = (
    Route(path="/operator/chips", method="POST", handler=operator.provision_chip,
          access=Access.OPERATE, body=operator.ProvisionBody, response=operator.MoveDone,
          statuses=_MOVE_STATUSES,
          summary="Provision a chip (the activator buys and links its number): "
          "`julia-chips chip provision`"),
    *(Route(path=f"/operator/chips/{{id}}/{name}", method="POST", handler=handler,
            access=Access.OPERATE, body=kind, response=operator.MoveDone,
            statuses=_MOVE_STATUSES, summary=f"{summary}: `julia-chips chip {name}`")
      for name, (summary, kind, handler) in operator.MOVES.items()),
    Route(path="/operator/brake/release", method="POST", handler=operator.release_brake,
          access=Access.OPERATE, body=operator.NoBody, response=BrakeReleaseReply,
          statuses=(200, 400, 401, 403, 409, 503),
          summary="Lift the fleet brake before its cool-off (409 if it stays engaged): "
          "`julia-chips brake release`"),
    Route(path="/operator/doctors/{id}/optout", method="POST",
          handler=operator_desk.opt_out_doctor, access=Access.OPERATE, id_type=DoctorId,
          body=operator_desk.OptOutBody, response=RouteReply, statuses=_MOVE_STATUSES,
          summary="No message reaches the doctor from any chip: `julia-chips route optout`"),
    Route(path="/operator/doctors/{id}/optin", method="POST",
          handler=operator_desk.opt_in_doctor, access=Access.OPERATE, id_type=DoctorId,
          body=operator_desk.OptInBody, response=RouteReply, statuses=_MOVE_STATUSES,
          summary="The doctor (and, given, that phone) may be written to again: "
          "`julia-chips route optin`"),
    Route(path="/operator/dead-letters/replay", method="POST",
          handler=operator_desk.replay_dead_letters, access=Access.OPERATE,
          body=ops.ReplayDeadLetters, response=ops.DeadLettersReplayed,
          statuses=_MOVE_STATUSES,
          summary="Send dead letters back where they came from (one `seq`, or `all` the "
          "filter matches): `julia-chips dlq replay`"),
    Route(path="/operator/dead-letters/purge", method="POST",
          handler=operator_desk.purge_dead_letters, access=Access.OPERATE,
          body=ops.PurgeDeadLetters, response=ops.DeadLettersPurged, statuses=_MOVE_STATUSES,
          summary="Delete dead letters for good (a `kind`, or `all`): `julia-chips dlq purge`"),
    Route(path="/operator/sends/settle", method="POST",
          handler=operator_desk.settle_unknown_send, access=Access.OPERATE,
          body=ops.SettleUnknownSend, response=ops.UnknownSendSettledReply,
          statuses=_MOVE_STATUSES,
          summary="Settle a send left `unknown` (delivered or not): `julia-chips sends settle`"),
)
_HTML = "text/html"
DASHBOARD_ROUTES: tuple[Route, ...] = (
    Route(path="/", handler=pages.fleet, query=pages.FleetQuery, media_type=_HTML,
          statuses=(200, 303, 400, 401, 503),
          summary="The dashboard: chips by state, bans, brake, backlog, projection lag and "
          "the chip table, live (`?token=` once signs a browser in)"),
    Route(path="/ui/chips/{id}", handler=pages.chip, media_type=_HTML,
          statuses=(200, 303, 400, 401, 404, 503),
          summary="The dashboard's page of one chip: its row, doctors and live history"),
    Route(path="/events/stream", handler=feed.event_stream, query=feed.FeedQuery,
          media_type="text/event-stream", statuses=(200, 400, 401, 503),
          summary="Server-sent events: `chip` and `fleet` events as they are stored, with "
          "`<chip seq>:<fleet seq>` ids (resume with Last-Event-ID)"),
    Route(path="/ui/dashboard.js", handler=pages.script, media_type="text/javascript",
          access=Access.OPEN, statuses=(200, 400), summary="The dashboard's script"),
    Route(path="/ui/dashboard.css", handler=pages.style, media_type="text/css",
          access=Access.OPEN, statuses=(200, 400), summary="The dashboard's style sheet"),
)
ROUTES: tuple[Route, ...] = (*READ_ROUTES, *OPERATOR_ROUTES, *DASHBOARD_ROUTES)


def route_table(routes: tuple[Route, ...]) -> list[web.RouteDef]:
    return [web.route(r.method, r.path, r.handler) for r in routes]


def declared_access(routes: tuple[Route, ...]) -> dict[str, Access]:
    """Path template -> the access its route declares, for `auth.token_guard`."""
    return {r.path: r.access for r in routes} | {"/openapi.json": Access.OPEN}


def page_paths(routes: tuple[Route, ...]) -> frozenset[str]:
    """The HTML pages: they take `?token=` and the session cookie (`auth.token_guard`)."""
    return frozenset(r.path for r in routes if r.media_type == _HTML)
