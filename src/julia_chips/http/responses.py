"""Response bodies: msgspec structs, so the OpenAPI schemas are generated from the same types."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from julia_chips.projections.distribution import ChipDoctors
from julia_chips.projections.fleet import FleetSummary
from julia_chips.projections.rows.chip import ChipRow
from julia_chips.supervisor import PartStatus

_ENCODER = msgspec.json.Encoder()


class RelinkView(msgspec.Struct, frozen=True, kw_only=True):
    """A logged-out chip being linked again: enter `pairing_code` on the phone (WhatsApp >
    Linked devices > Link with phone number), or scan `qr`; both last only this try."""

    attempt: int  # 0 until the first code is offered
    pairing_code: str | None
    qr: str | None
    since: datetime
    reason: str | None


class ChipView(ChipRow, frozen=True, kw_only=True):
    """`/chips/{id}`: the row, and the doctors the chip holds (the list pages leave them out:
    one more query per chip)."""

    doctors: ChipDoctors
    # Why the chip waits for an operator (a failed warm-up review, a relink that gave up):
    # `Resume` or `Retire` it.
    review_reason: str | None = None
    relink: RelinkView | None = None  # while `relinking`


class ChipPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ChipRow]
    total: int  # chips matching the filter
    limit: int
    offset: int
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last one


class WarmerDay(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    chip_id: str
    day_number: int
    messages_sent: int
    messages_received: int
    delivered: int
    read: int
    replied: int
    failed: int
    daily_cap: int
    next_daily_cap: int
    advanced: bool
    good_days: int
    reason: str
    warmer_progress: float
    created_at: datetime
    seq: int


class WarmerMetricsPage(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    items: list[WarmerDay]
    total: int


class StoredEventView(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    type: str
    occurred_at: datetime
    event: dict[str, Any]


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    items: list[StoredEventView]
    next_seq: int | None  # pass as `from_seq` for the next page; null when there is no more


class Health(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str  # "ok" or "degraded"
    nats: bool
    postgres: bool
    # By part name, when the app serves a supervised process (`julia-chips run`).
    parts: dict[str, PartStatus] = msgspec.field(default_factory=dict)


class ProjectionLag(msgspec.Struct, frozen=True, kw_only=True):
    last_seq: int
    lag: int  # events in the stream not yet in the read model


class ChipsHealth(msgspec.Struct, frozen=True, kw_only=True):
    fleet: FleetSummary
    projections: dict[str, ProjectionLag]


def json(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(body), status=status,
                        content_type="application/json")
