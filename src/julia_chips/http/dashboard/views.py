"""What the dashboard shows, as msgspec structs: the page and the live feed share them, so a
row the server draws and one the browser redraws on an event hold the same fields.

Numbers are masked (`privacy.mask_phone`): a dashboard is left open on screens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.codec import event_type
from julia_chips.contract.fleet import AnyFleetEvent, FleetBrakeEngaged
from julia_chips.privacy import mask_phone, mask_phones_in
from julia_chips.projections.rows.chip import ChipRow

_BESIDE = frozenset({"type", "chip_id", "occurred_at", "event_id", "command_id"})


class ChipLine(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the chip table."""

    id: str
    status: str
    number: str  # masked
    warm_day: int
    warmer_progress: float  # 0..1
    daily_cap: int
    health_score: float | None
    doctors: int | None  # None in a live update: doctors move with route events, not chip ones
    cooling_until: datetime | None
    cool_reason: str | None
    ban_reason: str | None


class ChipUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The `chip` event of the feed: one event of CHIP_EVENTS and the row it leaves."""

    seq: int  # CHIP_EVENTS stream sequence
    chip_id: str
    type: str  # the event type, `Cooled`
    occurred_at: datetime
    previous_status: str | None  # None: no row before (a new chip)
    status: str | None  # None: the chip has no row (never provisioned)
    line: ChipLine | None
    details: str  # the event's fields as JSON, numbers masked


class FleetUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The `fleet` event of the feed: the brake engaged or released."""

    seq: int  # FLEET_EVENTS stream sequence
    type: str
    occurred_at: datetime
    engaged: bool
    reason: str
    until: datetime | None


def chip_line(row: ChipRow, doctors: int | None) -> ChipLine:
    return ChipLine(id=row.id, status=row.status, number=mask_phone(row.phone_number),
                    warm_day=row.warm_day, warmer_progress=row.warmer_progress,
                    daily_cap=row.daily_cap, health_score=row.health_score, doctors=doctors,
                    cooling_until=row.cooling_until, cool_reason=row.cool_reason,
                    ban_reason=row.ban_reason)


def event_details(event: dict[str, Any]) -> str:
    """An event's fields but its type, ids and time (shown beside it, or noise), as JSON with
    every number masked."""
    shown = {k: v for k, v in event.items() if k not in _BESIDE and v is not None}
    return mask_phones_in(msgspec.json.encode(shown).decode())


def chip_update(seq: int, event: AnyChipEvent, before: ChipRow | None,
                after: ChipRow | None) -> ChipUpdate:
    return ChipUpdate(
        seq=seq, chip_id=event.chip_id, type=event_type(event), occurred_at=event.occurred_at,
        previous_status=before.status if before else None,
        status=after.status if after else None,
        line=chip_line(after, None) if after else None,
        details=event_details(msgspec.to_builtins(event)))


def fleet_update(seq: int, event: AnyFleetEvent) -> FleetUpdate:
    engaged = isinstance(event, FleetBrakeEngaged)
    return FleetUpdate(seq=seq, type=type(event).__name__, occurred_at=event.occurred_at,
                       engaged=engaged, reason=event.reason,
                       until=event.until if isinstance(event, FleetBrakeEngaged) else None)
