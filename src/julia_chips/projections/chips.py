"""The `julia_chips` projection: one row per chip, upserted once per batch; and the page
of rows that `/chips` and `julia-chips chip list` both read."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from julia_chips.contract.subjects import is_uuid as is_chip_id
from julia_chips.jetstream.stored_chip_event import read_chip_event
from julia_chips.projections.base import Envelope, Fold
from julia_chips.projections.bought_numbers import BoughtNumber, bought_numbers, with_bought_number
from julia_chips.projections.rows.chip import (
    COLUMNS,
    NEEDS_REVIEW_SQL,
    ChipRow,
    apply,
    as_record,
    from_record,
)

log = logging.getLogger(__name__)

_TYPES = {
    "id": "uuid", "warmer_progress": "float8", "health_score": "float8", "ddd": "int4",
    "warm_day": "int4", "good_days": "int4", "daily_cap": "int4", "last_seq": "int8",
    "activated_at": "timestamptz", "ready_at": "timestamptz", "banned_at": "timestamptz",
    "created_at": "timestamptz", "cooling_until": "timestamptz", "retired_at": "timestamptz",
    "updated_at": "timestamptz", "relink_attempt": "int4", "relink_since": "timestamptz",
}
_ARRAYS = ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS, 1))
_UPSERT = (
    f"INSERT INTO julia_chips ({', '.join(COLUMNS)}) SELECT * FROM unnest({_ARRAYS}) "
    f"ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")
    + " WHERE julia_chips.last_seq < EXCLUDED.last_seq"
)


class ChipsFold:
    """:param bought: numbers from ACTIVATIONS for `Activated` events stored without one
        (given on a rebuild only; see bought_numbers.py)."""

    def __init__(self, stored: dict[str, ChipRow],
                 bought: dict[str, BoughtNumber] | None = None) -> None:
        self.rows = stored
        self.changed: set[str] = set()
        self._bought = bought or {}

    def feed(self, item: Envelope) -> None:
        event = item.event
        if event is None:
            return
        if not is_chip_id(event.chip_id):
            log.warning("seq %d: chip id %r is not a UUID; no julia_chips row", item.seq,
                        event.chip_id[:60])
            return
        before = self.rows.get(event.chip_id)
        after = apply(before, item.seq, with_bought_number(event, self._bought))
        if after is not None and after is not before:
            self.rows[event.chip_id] = after
            self.changed.add(event.chip_id)

    async def upsert(self, conn: asyncpg.Connection) -> None:
        if not self.changed:
            return
        records = [as_record(self.rows[chip_id]) for chip_id in sorted(self.changed)]
        await conn.execute(_UPSERT, *(list(col) for col in zip(*records, strict=True)))

    async def copy(self, conn: asyncpg.Connection) -> None:
        records = [as_record(row) for _, row in sorted(self.rows.items())]
        await conn.copy_records_to_table("julia_chips", records=records, columns=COLUMNS)


class ChipsProjection:
    name = "julia_chips"
    stream = Stream.CHIP_EVENTS
    subjects = "chip.evt.>"
    tables: tuple[str, ...] = ("julia_chips",)
    after: str | None = None

    def decode(self, msg: Msg) -> Any:
        return read_chip_event(f"projection {self.name}", msg.subject,
                               msg.metadata.sequence.stream, msg.data, msg.headers)

    async def begin(self, conn: asyncpg.Connection, batch: Sequence[Envelope]) -> Fold:
        ids = {e.event.chip_id for e in batch
               if e.event is not None and is_chip_id(e.event.chip_id)}
        stored = await conn.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM julia_chips WHERE id = ANY($1::uuid[])", list(ids))
        return ChipsFold({str(r["id"]): from_record(r) for r in stored})

    async def empty(self, js: JetStreamContext) -> Fold:
        return ChipsFold({}, await bought_numbers(js))


class ChipRowsPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ChipRow]
    total: int  # rows matching the filter, on every page
    next_cursor: str | None  # the id to page on after; None on the last page


async def list_chip_rows(conn: asyncpg.Connection | asyncpg.Pool, status: Status | None,
                         limit: int, offset: int = 0, cursor: str | None = None, *,
                         needs_review: bool | None = None) -> ChipRowsPage:
    """Chips in id order, optionally of one status, or only those waiting (or not) for an
    operator's review; `cursor` (a chip id) pages without the cost of a growing offset."""
    where: list[str] = ["TRUE"]
    args: list[object] = []
    if status is not None:
        args.append(status.value)
        where.append(f"status = ${len(args)}")
    if needs_review is not None:
        where.append(NEEDS_REVIEW_SQL if needs_review else f"NOT {NEEDS_REVIEW_SQL}")
    total = await conn.fetchval(
        f"SELECT count(*) FROM julia_chips WHERE {' AND '.join(where)}", *args)
    if cursor is not None:
        args.append(uuid.UUID(cursor))
        where.append(f"id > ${len(args)}")
    rows = await conn.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM julia_chips WHERE {' AND '.join(where)} "
        f"ORDER BY id LIMIT {limit + 1} OFFSET {offset}", *args)
    items = [from_record(r) for r in rows[:limit]]
    return ChipRowsPage(items=items, total=total,
                        next_cursor=items[-1].id if len(rows) > limit else None)
