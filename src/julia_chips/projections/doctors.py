"""The doctor read models: `doctors` and `route_backlog` from ROUTE_EVENTS, `message_attempts`
from MSG_EVENTS, and the queries `GET /doctors/{id}` and the backlog figures run over them.

Three projections, not one: a projection follows one stream (its checkpoint is a sequence
of that stream), and the ledger's outcomes name the attempt, not the doctor, so the
per-doctor counts are a query over `message_attempts` rather than a second fold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from julia_chips.contract.messages import decode_message_event
from julia_chips.contract.route import decode_route_event
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.follower import body, with_headers
from julia_chips.projections.keyed import KeyedProjection, RowTable
from julia_chips.projections.rows.doctor import (
    AttemptRow,
    BacklogRow,
    DoctorRow,
    attempt_key,
    attempt_step,
    backlog_key,
    backlog_step,
    doctor_step,
)

DOCTORS = RowTable("doctors", "doctor_id", DoctorRow)
BACKLOG = RowTable("route_backlog", "request_id", BacklogRow)
ATTEMPTS = RowTable("message_attempts", "attempt_id", AttemptRow)


def _doctor_key(event: Any) -> str:
    return str(event.doctor_id)


def doctor_projections() -> tuple[KeyedProjection, ...]:
    return (
        KeyedProjection("doctors", Stream.ROUTE_EVENTS, "route.evt.>", DOCTORS,
                        with_headers(decode_route_event), _doctor_key, doctor_step),
        KeyedProjection("route_backlog", Stream.ROUTE_EVENTS, "route.evt.>", BACKLOG,
                        with_headers(decode_route_event), backlog_key, backlog_step),
        KeyedProjection("message_attempts", Stream.MSG_EVENTS, "msg.evt.>", ATTEMPTS,
                        body(decode_message_event), attempt_key, attempt_step),
    )


class MessageCounts(msgspec.Struct, frozen=True, kw_only=True):
    attempted: int = 0
    dispatched: int = 0
    failed: int = 0
    unknown: int = 0  # attempted, outcome never confirmed: held for review, never re-sent
    in_flight: int = 0  # attempted, no outcome recorded yet
    delivered: int = 0  # receipts from the gateway (ingest/feedback.py)
    read: int = 0
    replied: int = 0
    queued: int = 0  # requests waiting in the backlog


class DoctorView(msgspec.Struct, frozen=True, kw_only=True):
    doctor_id: str
    chip_id: str | None  # the chip holding the conversation; null when none does
    conversation: Literal["consented", "prospecting"]
    opted_out: bool
    opted_out_since: datetime | None
    opted_out_source: str | None
    opted_in_at: datetime | None
    quarantined: bool  # held from prospecting now (quarantined_until still ahead)
    quarantined_until: datetime | None
    quarantine_reason: str | None
    assigned_at: datetime | None
    reassigned_at: datetime | None
    reassigned_from: str | None
    reassign_reason: str | None
    replied_at: datetime | None
    first_seen_at: datetime
    updated_at: datetime
    messages: MessageCounts
    last_seq: int


class BacklogSummary(msgspec.Struct, frozen=True, kw_only=True):
    waiting: int  # send requests no chip could take yet
    oldest_queued_at: datetime | None
    oldest_age_seconds: float  # 0 when nothing waits


# A request whose SendAttempted exists was served even if its RequestServed was never
# written (the balancer crashed right after the attempt): the balancer itself counts it out.
_WAITING = """FROM route_backlog b WHERE b.status = 'queued'
    AND NOT EXISTS (SELECT 1 FROM message_attempts a WHERE a.attempt_id = b.request_id)"""
_COUNTS = """SELECT count(*) AS attempted,
    count(*) FILTER (WHERE outcome = 'dispatched') AS dispatched,
    count(*) FILTER (WHERE outcome = 'failed') AS failed,
    count(*) FILTER (WHERE outcome = 'unknown') AS unknown,
    count(*) FILTER (WHERE outcome IS NULL) AS in_flight,
    count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
    count(*) FILTER (WHERE read_at IS NOT NULL) AS read,
    count(*) FILTER (WHERE replied_at IS NOT NULL) AS replied
    FROM message_attempts WHERE doctor_id = $1"""


async def backlog_summary(conn: asyncpg.Connection | asyncpg.Pool, now: datetime
                          ) -> BacklogSummary:
    row = await conn.fetchrow(f"SELECT count(*) AS n, min(b.queued_at) AS oldest {_WAITING}")
    oldest = row["oldest"]
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return BacklogSummary(waiting=row["n"], oldest_queued_at=oldest, oldest_age_seconds=age)


async def doctor_view(conn: asyncpg.Connection | asyncpg.Pool, doctor_id: str, now: datetime
                      ) -> DoctorView | None:
    """The doctor's row with their message counts; None for a doctor never routed."""
    record = await conn.fetchrow(DOCTORS.select_sql, [doctor_id])
    if record is None:
        return None
    row: DoctorRow = DOCTORS.row(record)
    counts = await conn.fetchrow(_COUNTS, doctor_id)
    queued = await conn.fetchval(f"SELECT count(*) {_WAITING} AND b.doctor_id = $1", doctor_id)
    fields = {f: getattr(row, f) for f in DOCTORS.columns if f != "consented"}
    until = row.quarantined_until
    return DoctorView(
        **fields, conversation="consented" if row.consented else "prospecting",
        quarantined=until is not None and until > now,
        messages=MessageCounts(queued=queued, **dict(counts.items())))
