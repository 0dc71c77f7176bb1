"""The dashboard's pages, `/` (the fleet) and `/ui/chips/{id}` (one chip), and their script
and style sheet.

Every figure comes from the functions the JSON API calls (`/health/chips`, `/chips`,
`/distribution`, `/chips/{id}`, `/chips/{id}/events`), so a page and the API never
disagree by construction. The fleet page reads them in one snapshot (a repeatable-read
transaction) with the projections' checkpoints, which a projection commits with its rows:
the page shows the fleet exactly as of those sequences, and its live feed starts right
after them, so the browser counts every later move once and misses none.
"""

from __future__ import annotations

from importlib.resources import files

import msgspec
from aiohttp import web

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract.chip import Status
from julia_chips.http.chip_events import events_page
from julia_chips.http.chips import chip_view
from julia_chips.http.dashboard.render import chip_page, fleet_page
from julia_chips.http.dashboard.views import chip_line
from julia_chips.http.health import projection_lags
from julia_chips.http.keys import CLOCK, NATS_CONN, POOL
from julia_chips.http.params import EventsQuery, NoQuery, chip_id, query
from julia_chips.http.responses import ChipsHealth
from julia_chips.projections.chips import list_chip_rows
from julia_chips.projections.distribution import distribution
from julia_chips.projections.fleet import fleet_summary

TABLE_LIMIT = 500  # rows on the fleet page, the most `/chips` gives in one page
HISTORY_PAGES = 4  # pages of 500 events on a chip page; older ones are in the API
# No inline script or style: an injected tag could run nothing.
_SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store"}
_STATIC = files("julia_chips.http.dashboard") / "static"


class FleetQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Status | None = None  # only chips in this state
    # The read token, once: answered with a redirect without it that sets the session
    # cookie (http/auth.py); a handler never sees it.
    token: str | None = None


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", headers=_SECURITY)


async def fleet(request: web.Request) -> web.Response:
    q = query(request, FleetQuery)
    app = request.app
    async with app[POOL].acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                             readonly=True):
        lags = await projection_lags(app, conn)
        summary = await fleet_summary(conn, app[CLOCK].now())
        page = await list_chip_rows(conn, q.status, TABLE_LIMIT)
        shares = (await distribution(conn)).chips
    after = f"{lags['julia_chips'].last_seq}:{lags['fleet_brake'].last_seq}"
    health = ChipsHealth(fleet=summary, projections=lags)
    doctors = {share.chip_id: share.doctors for share in shares}
    lines = [chip_line(row, doctors.get(row.id, 0)) for row in page.items]
    return _html(fleet_page(health, lines, page.total, q.status, after))


async def chip(request: web.Request) -> web.Response:
    chip = chip_id(request)
    query(request, NoQuery)
    view = await chip_view(request, chip)
    pages, note = [await events_page(request, chip, EventsQuery(limit=500))], ""
    while pages[-1].next_seq is not None and len(pages) < HISTORY_PAGES:
        pages.append(await events_page(request, chip, EventsQuery(
            from_seq=pages[-1].next_seq, limit=500)))
    history = msgspec.structs.replace(pages[-1], items=[e for p in pages for e in p.items])
    last = history.items[-1].seq if history.items else 0
    if pages[-1].next_seq is not None:
        note = (f"the first {len(history.items)} events; the rest: "
                f"/chips/{chip}/events?from_seq={pages[-1].next_seq}")
        last = await JetStreamChipEventLog(request.app[NATS_CONN].jetstream()).last_seq(chip)
    return _html(chip_page(view, history, f"{last}:0", note))


def _asset(name: str, content_type: str) -> web.Response:
    return web.Response(body=(_STATIC / name).read_bytes(), content_type=content_type,
                        headers={"X-Content-Type-Options": "nosniff"})


async def script(request: web.Request) -> web.Response:
    query(request, NoQuery)
    return _asset("dashboard.js", "text/javascript")


async def style(request: web.Request) -> web.Response:
    query(request, NoQuery)
    return _asset("dashboard.css", "text/css")
