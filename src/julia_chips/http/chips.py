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
from julia_chips.http.responses import ChipPage, ChipView, WarmerDay, WarmerMetricsPage, json
from julia_chips.projections.audit import read_row
from julia_chips.projections.chip_rows import (
    COLUMNS,
    NEEDS_REVIEW_SQL,
    ChipRow,
    from_record,
    review_reason,
)
from julia_chips.projections.distribution import chip_doctors
from julia_chips.projections.warmer_rows import COLUMNS as WARMER_COLUMNS

_CHIP_COLUMNS = ", ".join(COLUMNS)


async def list_chips(request: web.Request) -> web.Response:
    q = query(request, ChipsQuery)
    where: list[str] = ["TRUE"]
    args: list[object] = []
    if q.status is not None:
        args.append(q.status.value)
        where.append(f"status = ${len(args)}")
    if q.needs_review is not None:
        where.append(NEEDS_REVIEW_SQL if q.needs_review else f"NOT {NEEDS_REVIEW_SQL}")
    filters = " AND ".join(where)
    total = await request.app[POOL].fetchval(
        f"SELECT count(*) FROM julia_chips WHERE {filters}", *args)
    if q.cursor is not None:
        args.append(uuid.UUID(q.cursor))
        where.append(f"id > ${len(args)}")
    rows = await request.app[POOL].fetch(
        f"SELECT {_CHIP_COLUMNS} FROM julia_chips WHERE {' AND '.join(where)} "
        f"ORDER BY id LIMIT {q.limit + 1} OFFSET {q.offset}", *args)
    items = [from_record(r) for r in rows[:q.limit]]
    next_cursor = items[-1].id if len(rows) > q.limit else None
    return json(ChipPage(items=items, total=total, limit=q.limit, offset=q.offset,
                         next_cursor=next_cursor))


async def _chip_row(request: web.Request, chip: str) -> ChipRow:
    row = await read_row(request.app[POOL], chip)
    if row is None:
        raise ApiProblem(404, f"no chip {chip}", "id")
    return row


async def get_chip(request: web.Request) -> web.Response:
    chip = chip_id(request)
    query(request, NoQuery)
    row = await _chip_row(request, chip)
    doctors = await chip_doctors(request.app[POOL], chip)
    return json(ChipView(**msgspec.structs.asdict(row), doctors=doctors,
                         review_reason=review_reason(row)))


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
