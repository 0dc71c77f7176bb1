"""`chip_warmer_metrics`: one row per `WarmDayCompleted`, with every figure the event carries."""

from __future__ import annotations

import uuid
from typing import Any

from julia_chips.contract.chip import WarmDayCompleted

# A fixed namespace: the row id is derived from the event id, so a replay hits the same row.
_NAMESPACE = uuid.UUID("5a0b3f0e-6c8e-4a51-9a7e-2f6c7d1e9b31")

COLUMNS: tuple[str, ...] = (
    "id", "chip_id", "day_number", "messages_sent", "messages_received", "created_at",
    "delivered", "read", "replied", "failed", "daily_cap", "next_daily_cap", "advanced",
    "good_days", "reason", "warmer_progress", "seq",
)


def row_id(event_id: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, event_id)


def warmer_record(seq: int, event: WarmDayCompleted) -> tuple[Any, ...]:
    """Values in COLUMNS order."""
    return (
        row_id(event.event_id), uuid.UUID(event.chip_id), event.day_number,
        event.messages_sent, event.messages_received, event.occurred_at, event.delivered,
        event.read, event.replied, event.failed, event.daily_cap, event.next_daily_cap,
        event.advanced, event.good_days, event.reason, event.warmer_progress, seq,
    )
