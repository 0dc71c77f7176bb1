"""The `chip_warmer_metrics` projection: one row per `WarmDayCompleted`.

Its rows reference `julia_chips`, so it runs `after` that projection: the runner holds a
batch until the chips checkpoint has passed it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import WarmDayCompleted
from julia_chips.contract.subjects import Stream, is_uuid
from julia_chips.jetstream.stored_chip_event import read_chip_event
from julia_chips.projections.base import Envelope, Fold
from julia_chips.projections.rows.warmer import COLUMNS, warmer_record

log = logging.getLogger(__name__)

_TYPES = ("uuid", "uuid", "int4", "int4", "int4", "timestamptz", "int4", "int4", "int4", "int4",
          "int4", "int4", "bool", "int4", "text", "float8", "int8")
_ARRAYS = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, 1))
_INSERT = (f"INSERT INTO chip_warmer_metrics ({', '.join(COLUMNS)}) "
           f"SELECT * FROM unnest({_ARRAYS}) ON CONFLICT (id) DO NOTHING")


class WarmerFold:
    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def feed(self, item: Envelope) -> None:
        if isinstance(item.event, WarmDayCompleted) and is_uuid(item.event.chip_id):
            self.records.append(warmer_record(item.seq, item.event))

    async def upsert(self, conn: asyncpg.Connection) -> None:
        if self.records:
            await conn.execute(_INSERT, *(list(c) for c in zip(*self.records, strict=True)))

    async def copy(self, conn: asyncpg.Connection) -> None:
        await conn.copy_records_to_table("chip_warmer_metrics", records=self.records,
                                         columns=COLUMNS)


class WarmerMetricsProjection:
    name = "chip_warmer_metrics"
    stream = Stream.CHIP_EVENTS
    subjects = "chip.evt.>"
    tables: tuple[str, ...] = ("chip_warmer_metrics",)
    after: str | None = "julia_chips"

    def decode(self, msg: Msg) -> Any:
        return read_chip_event(f"projection {self.name}", msg.subject,
                               msg.metadata.sequence.stream, msg.data, msg.headers)

    async def begin(self, conn: asyncpg.Connection, batch: Sequence[Envelope]) -> Fold:
        return WarmerFold()

    async def empty(self, js: JetStreamContext) -> Fold:
        return WarmerFold()
