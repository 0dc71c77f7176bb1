"""The `julia_chips` row of one chip, as a pure fold over its events.

Kept apart from the chip actor's `evolve` on purpose: the read model has its own columns,
and `julia-chips audit` compares the two folds, which only means something if they are
separate code. Every value comes from an event, never from the wall clock, so a rebuild
writes the very same row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status

_r = msgspec.structs.replace


class ChipRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    phone_number: str
    salvy_account_id: str | None
    status: str
    warmer_progress: float
    activated_at: datetime | None
    ready_at: datetime | None
    banned_at: datetime | None
    created_at: datetime
    ddd: int | None
    instance: str | None
    host: str | None
    warm_day: int
    good_days: int
    daily_cap: int
    health_score: float | None
    cooling_until: datetime | None
    cool_reason: str | None
    cooled_from: str | None
    ban_reason: str | None
    retired_at: datetime | None
    updated_at: datetime
    last_seq: int
    # While the gateway's logout is being undone (status `relinking`, migration 003): the
    # try, since when, why, and the short-lived code to enter or QR to scan. Cleared when the
    # chip is linked again or the try fails: the code is a credential of sorts.
    relink_attempt: int = 0
    relink_since: datetime | None = None
    relink_reason: str | None = None
    relink_pairing_code: str | None = None
    relink_qr: str | None = None


COLUMNS: tuple[str, ...] = ChipRow.__struct_fields__
# A chip cooled with no end rests until an operator looks at it: the lifecycle cools that way
# only a warm-up that failed its review (`Cooled` with `until` null), and only `Resume` or
# `Retire` takes it out. The SQL and the function say the same thing.
NEEDS_REVIEW_SQL = "(status = 'cooling' AND cooling_until IS NULL)"


def review_reason(row: ChipRow) -> str | None:
    """Why the chip waits for an operator's review; None when it does not."""
    if row.status == Status.COOLING.value and row.cooling_until is None:
        return row.cool_reason
    return None


def _provisioned(event: ev.Provisioned, seq: int) -> ChipRow:
    return ChipRow(
        id=event.chip_id, phone_number=event.phone_number or "",
        salvy_account_id=event.salvy_account_id, status=Status.PROVISIONING.value,
        warmer_progress=0.0, activated_at=None, ready_at=None, banned_at=None,
        created_at=event.occurred_at, ddd=event.ddd, instance=None, host=None, warm_day=0,
        good_days=0, daily_cap=0, health_score=None, cooling_until=None, cool_reason=None,
        cooled_from=None, ban_reason=None, retired_at=None, updated_at=event.occurred_at,
        last_seq=seq)


def _warmup(row: ChipRow, event: ev.Activated | ev.Reinstated) -> ChipRow:
    extra: dict[str, Any] = {}
    if isinstance(event, ev.Activated):
        extra = {"instance": event.instance, "host": event.host,
                 "activated_at": event.occurred_at,
                 "phone_number": event.phone_number or row.phone_number,
                 "salvy_account_id": event.salvy_account_id or row.salvy_account_id}
    return _r(row, status=Status.WARMING.value, warm_day=1, good_days=0,
              daily_cap=event.daily_cap, warmer_progress=0.0, ready_at=None, **extra)


_NO_RELINK: dict[str, Any] = {"relink_attempt": 0, "relink_since": None, "relink_reason": None,
                              "relink_pairing_code": None, "relink_qr": None}
_NO_CODE: dict[str, Any] = {"relink_pairing_code": None, "relink_qr": None}


def _changed(row: ChipRow, event: ev.AnyChipEvent) -> ChipRow:
    match event:
        case ev.RelinkRequested():
            return _r(row, status=Status.RELINKING.value, **_NO_RELINK | {
                "relink_since": event.occurred_at, "relink_reason": event.reason})
        case ev.RelinkStarted():
            return _r(row, relink_attempt=event.attempt, relink_pairing_code=event.pairing_code,
                      relink_qr=event.qr)
        case ev.RelinkFailed():
            return _r(row, relink_attempt=event.attempt, **_NO_CODE)
        case ev.Relinked():
            return _r(row, status=event.status.value, **_NO_RELINK)
        case ev.ActivationStarted():
            return _r(row, status=Status.ACTIVATING.value, host=event.host or row.host)
        case ev.Activated() | ev.Reinstated():
            return _warmup(row, event)
        case ev.WarmDayCompleted():
            return _r(row, warm_day=event.day_number + 1, good_days=event.good_days,
                      daily_cap=event.next_daily_cap, warmer_progress=event.warmer_progress)
        case ev.Ready():
            return _r(row, status=Status.READY.value, ready_at=event.occurred_at,
                      warmer_progress=1.0, good_days=event.good_days)
        case ev.InService():
            return _r(row, status=Status.ACTIVE.value)
        case ev.OutOfService():
            return _r(row, status=Status.READY.value)
        case ev.Cooled():
            return _r(row, status=Status.COOLING.value, cooling_until=event.until,
                      cool_reason=event.reason, cooled_from=event.previous_status.value,
                      **_NO_RELINK)
        case ev.Resumed():
            return _r(row, status=event.status.value, cooling_until=None, cool_reason=None,
                      cooled_from=None)
        case ev.Banned():
            return _r(row, status=Status.BANNED.value, banned_at=event.occurred_at,
                      ban_reason=event.reason, cooling_until=None, cool_reason=None,
                      cooled_from=None, **_NO_RELINK)
        case ev.Retired():
            return _r(row, status=Status.RETIRED.value, retired_at=event.occurred_at,
                      **_NO_RELINK)
        case ev.TrafficObserved() if event.health_score is not None:
            return _r(row, health_score=event.health_score)
    return row  # Provisioned again, ActivationFailed, unscored traffic: no column moves


def apply(row: ChipRow | None, seq: int, event: ev.AnyChipEvent) -> ChipRow | None:
    """The row after the event at stream sequence `seq`.

    An event at or below the row's `last_seq` was already applied (a replay) and changes
    nothing; events of a chip never provisioned have no row to land in.
    """
    if row is not None and seq <= row.last_seq:
        return row
    if row is None:
        return _provisioned(event, seq) if isinstance(event, ev.Provisioned) else None
    return _r(_changed(row, event), updated_at=event.occurred_at, last_seq=seq)


def as_record(row: ChipRow) -> tuple[Any, ...]:
    """Values in COLUMNS order, for COPY and `unnest` upserts."""
    return tuple(getattr(row, name) for name in COLUMNS)


def from_record(record: Any) -> ChipRow:
    values = {name: record[name] for name in COLUMNS}
    values["id"] = str(values["id"])
    return ChipRow(**values)
