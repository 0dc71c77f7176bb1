"""Projections whose rows are keyed by one text column and folded one event at a time.

The doctor read models (`doctors`, `route_backlog`, `message_attempts`) share this shape: a
pure `step(row, seq, event)` per table, rows that remember the last stream sequence they
applied, one `unnest` upsert per batch and one COPY per rebuild. Only the step differs, so
the runner's and the rebuild's writes are generated here once from the row struct.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import Stream
from julia_chips.projections.base import Envelope, Fold

Step = Callable[[Any, int, Any], Any]  # (stored row or None, seq, event) -> row or None
KeyOf = Callable[[Any], "str | None"]  # the row an event lands in; None: not ours
Decode = Callable[[Msg], Any]  # `jetstream/follower.py` `body` or `with_headers`
_PG = {datetime: "timestamptz", bool: "bool", int: "int8", float: "float8", str: "text"}


def _pg_type(annotation: Any) -> str:
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return _PG[annotation]


class RowTable:
    """SQL for one keyed table, derived from its row struct (fields = columns, in order)."""

    def __init__(self, name: str, key: str, row_type: type[msgspec.Struct]) -> None:
        fields = msgspec.structs.fields(row_type)
        self.name, self.key, self.row_type = name, key, row_type
        self.columns: tuple[str, ...] = tuple(f.name for f in fields)
        arrays = ", ".join(f"${i}::{_pg_type(f.type)}[]" for i, f in enumerate(fields, 1))
        self.upsert_sql = (
            f"INSERT INTO {name} ({', '.join(self.columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({key}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c != key)
            + f" WHERE {name}.last_seq < EXCLUDED.last_seq")
        self.select_sql = (f"SELECT {', '.join(self.columns)} FROM {name} "
                           f"WHERE {key} = ANY($1::text[])")

    def record(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, c) for c in self.columns)

    def row(self, record: Any) -> Any:
        return self.row_type(**{c: record[c] for c in self.columns})


class KeyedFold:
    """A batch (or a whole replay) folded in memory from the rows it touches."""

    def __init__(self, table: RowTable, step: Step, key_of: KeyOf,
                 stored: dict[str, Any]) -> None:
        self._table, self._step, self._key_of = table, step, key_of
        self.rows = stored
        self.changed: set[str] = set()

    def feed(self, item: Envelope) -> None:
        if item.event is None:
            return
        key = self._key_of(item.event)
        if key is None:
            return
        before = self.rows.get(key)
        if before is not None and item.seq <= before.last_seq:
            return  # already applied: a replay or a redelivery changes nothing
        after = self._step(before, item.seq, item.event)
        if after is not None and after is not before:
            self.rows[key] = after
            self.changed.add(key)

    async def upsert(self, conn: asyncpg.Connection) -> None:
        if not self.changed:
            return
        records = [self._table.record(self.rows[k]) for k in sorted(self.changed)]
        await conn.execute(self._table.upsert_sql,
                           *(list(col) for col in zip(*records, strict=True)))

    async def copy(self, conn: asyncpg.Connection) -> None:
        records = [self._table.record(row) for _, row in sorted(self.rows.items())]
        await conn.copy_records_to_table(self._table.name, records=records,
                                         columns=self._table.columns)


class KeyedProjection:
    """A `Projection` (see base.py) over one stream into one keyed table."""

    after: str | None = None

    def __init__(self, name: str, stream: Stream, subjects: str, table: RowTable,
                 decode: Decode, key_of: KeyOf, step: Step) -> None:
        self.name, self.stream, self.subjects = name, stream, subjects
        self.tables: tuple[str, ...] = (table.name,)
        self._table, self._decode, self._key_of, self._step = table, decode, key_of, step

    def decode(self, msg: Msg) -> Any:
        return self._decode(msg)

    async def begin(self, conn: asyncpg.Connection, batch: Sequence[Envelope]) -> Fold:
        keys = {k for e in batch if e.event is not None
                and (k := self._key_of(e.event)) is not None}
        stored = await conn.fetch(self._table.select_sql, list(keys))
        rows = {r[self._table.key]: self._table.row(r) for r in stored}
        return KeyedFold(self._table, self._step, self._key_of, rows)

    async def empty(self, js: JetStreamContext) -> Fold:
        return KeyedFold(self._table, self._step, self._key_of, {})
