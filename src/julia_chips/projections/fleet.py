"""The fleet brake from FLEET_EVENTS, and the fleet summary `/health/chips` serves.

The summary's counts are a query over `julia_chips` (a few thousand rows, indexed by
status) and the backlog a query over `route_backlog`: a second copy of those counts would
be one more thing a rebuild must keep equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import Status
from julia_chips.contract.fleet import AnyFleetEvent, FleetBrakeEngaged, FleetBrakeReleased
from julia_chips.contract.subjects import Stream
from julia_chips.projections.base import Envelope, Fold
from julia_chips.projections.doctors import BacklogSummary, backlog_summary

_DECODER = msgspec.json.Decoder(AnyFleetEvent)
BAN_WINDOW = timedelta(days=7)
_UPSERT = """INSERT INTO fleet_brake (id, engaged, reason, until, changed_at, last_seq)
    VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET engaged = EXCLUDED.engaged,
    reason = EXCLUDED.reason, until = EXCLUDED.until, changed_at = EXCLUDED.changed_at,
    last_seq = EXCLUDED.last_seq WHERE fleet_brake.last_seq < EXCLUDED.last_seq"""


class BrakeState(msgspec.Struct, frozen=True, kw_only=True):
    engaged: bool = False
    reason: str | None = None
    until: datetime | None = None
    changed_at: datetime | None = None


class FleetSummary(msgspec.Struct, frozen=True, kw_only=True):
    chips_total: int
    by_status: dict[str, int]
    banned_last_7d: int
    brake: BrakeState
    backlog: BacklogSummary  # the balancer's durable backlog (ROUTE_EVENTS)


class BrakeFold:
    def __init__(self) -> None:
        self.latest: tuple[Any, ...] | None = None

    def feed(self, item: Envelope) -> None:
        event = item.event
        if isinstance(event, FleetBrakeEngaged):
            self.latest = (True, event.reason, event.until, event.occurred_at, item.seq)
        elif isinstance(event, FleetBrakeReleased):
            self.latest = (False, event.reason, None, event.occurred_at, item.seq)

    async def upsert(self, conn: asyncpg.Connection) -> None:
        if self.latest is not None:
            await conn.execute(_UPSERT, *self.latest)

    copy = upsert  # a single row either way


class FleetBrakeProjection:
    name = "fleet_brake"
    stream = Stream.FLEET_EVENTS
    subjects = "fleet.evt.>"
    tables: tuple[str, ...] = ("fleet_brake",)
    after: str | None = None

    def decode(self, msg: Msg) -> Any:
        return _DECODER.decode(msg.data)

    async def begin(self, conn: asyncpg.Connection, batch: Sequence[Envelope]) -> Fold:
        return BrakeFold()

    async def empty(self, js: JetStreamContext) -> Fold:
        return BrakeFold()


async def fleet_summary(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> FleetSummary:
    """Counts by state (every state present, zeros included), recent bans, the brake, the
    balancer's backlog."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM julia_chips GROUP BY status")
    by_status = {s.value: 0 for s in Status} | {r["status"]: r["n"] for r in rows}
    banned = await conn.fetchval(
        "SELECT count(*) FROM julia_chips WHERE banned_at >= $1", now - BAN_WINDOW)
    brake_row = await conn.fetchrow("SELECT engaged, reason, until, changed_at FROM fleet_brake")
    brake = BrakeState()
    if brake_row is not None:
        until = brake_row["until"]
        engaged = bool(brake_row["engaged"]) and (until is None or until > now)
        brake = BrakeState(engaged=engaged, reason=brake_row["reason"], until=until,
                           changed_at=brake_row["changed_at"])
    return FleetSummary(chips_total=sum(by_status.values()), by_status=by_status,
                        banned_last_7d=banned, brake=brake,
                        backlog=await backlog_summary(conn, now))
