"""`julia-chips audit CHIP_ID`: a chip's history from the stream, and a check of its row.

The chip actor's own fold (`chip_lifecycle.fold`) is compared with the `julia_chips` row
the projection wrote: two independent folds of the same events that must agree. Phone
numbers are printed masked: an audit transcript ends up in tickets.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from rich.console import Console
from rich.table import Table

from julia_chips.chip.event_log import StoredEvent
from julia_chips.chip.model.lifecycle import ChipState, fold
from julia_chips.contract.codec import event_type
from julia_chips.privacy import LINK_CODES, mask_phone
from julia_chips.projections.rows.chip import COLUMNS, ChipRow, from_record

_COMMON = {"event_id", "chip_id", "command_id", "occurred_at", "type"}
# Fields both folds have, with the same meaning.
COMPARED = ("status", "phone_number", "salvy_account_id", "ddd", "instance", "host",
            "warm_day", "good_days", "daily_cap", "warmer_progress", "cooling_until",
            "activated_at", "ready_at", "banned_at", "health_score", "relink_attempt")
_NUMBER = ("phone_number", "salvy_account_id")


class Difference(msgspec.Struct, frozen=True):
    field: str
    from_events: Any
    in_read_model: Any


def key_fields(stored: StoredEvent) -> str:
    fields = msgspec.to_builtins(stored.event)
    shown = []
    for name, value in fields.items():
        if name in _COMMON or value is None:
            continue
        if name == "phone_number":
            value = mask_phone(str(value))
        elif name in LINK_CODES:
            value = "<hidden>"
        shown.append(f"{name}={value}")
    return " ".join(shown)


def _expected(state: ChipState, name: str) -> Any:
    value = getattr(state, name)
    if name == "status":
        return value.value if value is not None else None
    if name == "phone_number":
        return value or ""
    return value


def _agrees(state: ChipState, row: ChipRow, name: str) -> bool:
    """A number the events never named may be in the row all the same: a rebuild takes it
    from the activation's record for chips activated before `Activated` carried it."""
    expected = _expected(state, name)
    return expected == getattr(row, name) or (name in _NUMBER and not expected)


def compare(state: ChipState, row: ChipRow | None, last_seq: int) -> list[Difference]:
    """Where the read model disagrees with the fold of the events; empty when they agree."""
    if row is None:
        return [Difference("row", "present", "missing")] if state.status else []
    found = [Difference(name, _expected(state, name), getattr(row, name))
             for name in COMPARED if not _agrees(state, row, name)]
    if row.last_seq != last_seq:
        found.append(Difference("last_seq", last_seq, row.last_seq))
    return found


async def read_row(conn: asyncpg.Connection | asyncpg.Pool, chip_id: str
                   ) -> ChipRow | None:
    record = await conn.fetchrow(
        f"SELECT {', '.join(COLUMNS)} FROM julia_chips WHERE id = $1", uuid.UUID(chip_id))
    return from_record(record) if record is not None else None


def _shown(name: str, value: Any) -> str:
    if name == "phone_number" and value:
        return mask_phone(str(value))
    return value.isoformat() if isinstance(value, datetime) else str(value)


def print_audit(console: Console, chip_id: str, history: list[StoredEvent],
                row: ChipRow | None) -> list[Difference]:
    history_table = Table(title=f"chip {chip_id}: {len(history)} events")
    for column in ("time", "seq", "event", "key fields"):
        history_table.add_column(column, overflow="fold")
    for stored in history:
        history_table.add_row(stored.event.occurred_at.isoformat(), str(stored.seq),
                              event_type(stored.event), key_fields(stored))
    console.print(history_table)
    state = fold(chip_id, [s.event for s in history])
    differences = compare(state, row, history[-1].seq if history else 0)
    check = Table(title="fold of the events vs the julia_chips row")
    for column in ("field", "from events", "read model", ""):
        check.add_column(column)
    wrong = {d.field for d in differences}
    for name in COMPARED:
        check.add_row(name, _shown(name, _expected(state, name)),
                      _shown(name, getattr(row, name)) if row else "-",
                      "[red]differs[/red]" if name in wrong else "[green]ok[/green]")
    check.add_row("last_seq", str(history[-1].seq if history else 0),
                  str(row.last_seq) if row else "-",
                  "[red]differs[/red]" if "last_seq" in wrong or "row" in wrong
                  else "[green]ok[/green]")
    console.print(check)
    return differences
