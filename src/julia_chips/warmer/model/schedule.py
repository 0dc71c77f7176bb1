"""When each warming chip's day closes: at the first local midnight after it opened.

A warm day is a São Paulo calendar day, because that is when doctors read and answer. The
close command's id is fixed by chip, warm-up run and day number, so any number of schedulers
(or one restarted mid-midnight) send the same command and the chip applies it once.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from julia_chips.balancer.model.protection import SAO_PAULO as SAO_PAULO
from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status
from julia_chips.contract.chip_commands import CloseWarmDay


class WarmDay(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    day_number: int
    opened_at: datetime  # when the day began: activation, reinstatement or the last close
    run: int = 1  # warm-ups started: 1 + reinstatements; keeps command ids apart
    open: bool = True  # False while the chip is not warming (cooling, ready, banned...)


def follow(day: WarmDay | None, event: ev.AnyChipEvent) -> WarmDay | None:
    """The chip's warm day after `event` (None: the chip never started warming)."""
    replace = msgspec.structs.replace
    match event:
        case ev.Activated():
            return WarmDay(chip_id=event.chip_id, day_number=1, opened_at=event.occurred_at,
                           run=day.run + 1 if day else 1)
        case ev.Reinstated():
            return WarmDay(chip_id=event.chip_id, day_number=1, opened_at=event.occurred_at,
                           run=day.run + 1 if day else 2)
        case ev.WarmDayCompleted() if day is not None:
            return replace(day, day_number=event.day_number + 1, opened_at=event.occurred_at)
        case ev.Resumed() if day is not None:
            return replace(day, open=event.status is Status.WARMING)
        case ev.Ready() | ev.Cooled() | ev.Banned() | ev.Retired() if day is not None:
            return replace(day, open=False)
    return day


def closes_at(day: WarmDay, tz: ZoneInfo = SAO_PAULO) -> datetime:
    """The first local midnight after the day opened (UTC-aware, like every clock reading)."""
    local = day.opened_at.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)


def is_due(day: WarmDay, now: datetime, tz: ZoneInfo = SAO_PAULO) -> bool:
    return day.open and now >= closes_at(day, tz)


def close_command(day: WarmDay) -> CloseWarmDay:
    """`close:<chip_id>:<day_number>`, suffixed `:w<run>` after a reinstatement."""
    suffix = f":w{day.run}" if day.run > 1 else ""
    return CloseWarmDay(command_id=f"close:{day.chip_id}:{day.day_number}{suffix}",
                        day_number=day.day_number)
