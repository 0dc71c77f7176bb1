"""`/chips`, `/chips/{id}` (with the doctors it holds) and `/chips/{id}/warmer-metrics`:
straight from the read models."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from aiohttp import web

from julia_chips.http.errors import ApiProblem
from julia_chips.http.keys import POOL
from julia_chips.http.params import ChipsQuery, NoQuery, PageQuery, chip_id, query
from julia_chips.http.responses import (
    ChipPage,
    ChipView,
    RelinkView,
    WarmerDay,
    WarmerMetricsPage,
    json,
)
from julia_chips.projections.audit import read_row
from julia_chips.projections.chips import list_chip_rows
from julia_chips.projections.distribution import ChipDoctors, chip_doctors
from julia_chips.projections.rows.chip import ChipRow, review_reason
from julia_chips.projections.rows.warmer import COLUMNS as WARMER_COLUMNS


async def list_chips(request: web.Request) -> web.Response:
    q = query(request, ChipsQuery)
    page = await list_chip_rows(request.app[POOL], q.status, q.limit, q.offset, q.cursor,
                                needs_review=q.needs_review)
    return json(ChipPage(items=page.items, total=page.total, limit=q.limit, offset=q.offset,
                         next_cursor=page.next_cursor))


async def _chip_row(request: web.Request, chip: str) -> ChipRow:
    row = await read_row(request.app[POOL], chip)
    if row is None:
        raise ApiProblem(404, f"no chip {chip}", "id")
    return row


async def chip_view(request: web.Request, chip: str) -> ChipView:
    """`/chips/{id}`'s body, which the dashboard's chip page shows too.
    :raises ApiProblem: 404."""
    row = await _chip_row(request, chip)
    return view_of(row, await chip_doctors(request.app[POOL], chip))


def view_of(row: ChipRow, doctors: ChipDoctors) -> ChipView:
    """A chip as `/chips/{id}`, the dashboard and `julia-chips chip show` present it."""
    return ChipView(**msgspec.structs.asdict(row), doctors=doctors,
                    review_reason=review_reason(row), relink=_relink(row))


def _relink(row: ChipRow) -> RelinkView | None:
    if row.relink_since is None:
        return None
    return RelinkView(attempt=row.relink_attempt, pairing_code=row.relink_pairing_code,
                      qr=row.relink_qr, since=row.relink_since, reason=row.relink_reason)


async def get_chip(request: web.Request) -> web.Response:
    chip = chip_id(request)
    query(request, NoQuery)
    return json(await chip_view(request, chip))


async def warmer_metrics(request: web.Request) -> web.Response:
    chip = chip_id(request)
    q = query(request, PageQuery)
    await _chip_row(request, chip)
    pool = request.app[POOL]
    total = await pool.fetchval(
        "SELECT count(*) FROM chip_warmer_metrics WHERE chip_id = $1", uuid.UUID(chip))
    rows = await pool.fetch(
        f"SELECT {', '.join(WARMER_COLUMNS)} FROM chip_warmer_metrics WHERE chip_id = $1 "
        f"ORDER BY seq LIMIT {q.limit} OFFSET {q.offset}", uuid.UUID(chip))
    items = [_warmer_day(r) for r in rows]
    return json(WarmerMetricsPage(chip_id=chip, items=items, total=total))


def _warmer_day(record: Any) -> WarmerDay:
    values: dict[str, Any] = dict(record.items())
    values["id"], values["chip_id"] = str(values["id"]), str(values["chip_id"])
    return WarmerDay(**values)
