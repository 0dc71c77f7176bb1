"""The demo's accelerated clock, where a restarted `run` picks it up, and how other commands
read the same time.

The demo starts on the next Monday, 07:50 in São Paulo, so a newcomer sees the first
prospecting hours (08:00) and a working week before the first Sunday's quiet day. `run`
writes its clock's reading to `demo-clock.json` in the data folder every second and on the
way out; the next `run` goes on from there (time never runs backwards under the chips'
events), and the CLI reads it to see the demo's "now" rather than the wall's.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import msgspec

from julia_chips.balancer.model.protection import SAO_PAULO
from julia_chips.clock import AcceleratedClock, Clock, SystemClock

log = logging.getLogger(__name__)
CLOCK_FILE = "demo-clock.json"
DEMO_OPENS = time(7, 50)  # local time of the demo's first morning


class ClockMark(msgspec.Struct, frozen=True, kw_only=True):
    simulated: datetime  # the demo clock's reading...
    wall: datetime  # ...at this wall-clock time
    speed: float


def first_morning(wall: datetime) -> datetime:
    """The next Monday at DEMO_OPENS in São Paulo, from `wall` on (UTC)."""
    local = wall.astimezone(SAO_PAULO)
    monday = local.date() + timedelta(days=(7 - local.weekday()) % 7)
    start = datetime.combine(monday, DEMO_OPENS, tzinfo=SAO_PAULO)
    if start < local:
        start += timedelta(days=7)
    return start.astimezone(UTC)


def _read(data_dir: Path) -> ClockMark | None:
    path = data_dir / CLOCK_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=ClockMark)
    except FileNotFoundError:
        return None
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        log.warning("%s unreadable (%s): the demo clock starts afresh", path, err)
        return None


def demo_clock(data_dir: Path, speed: float) -> AcceleratedClock:
    """The demo's clock: on from the last reading a previous `run` left, else from the next
    Monday morning."""
    mark = _read(data_dir)
    start = mark.simulated if mark else first_morning(datetime.now(UTC))
    return AcceleratedClock(start, speed)


def remember(data_dir: Path, clock: AcceleratedClock) -> None:
    """Write the clock's reading down (atomically: a crash leaves the last one whole)."""
    mark = ClockMark(simulated=clock.now(), wall=datetime.now(UTC), speed=clock.speed)
    path = data_dir / CLOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(msgspec.to_builtins(mark)))
    partial.replace(path)


class ReadClock:
    """The running demo's time as another process sees it: the last reading, moved on at
    its speed."""

    def __init__(self, mark: ClockMark) -> None:
        self._mark = mark

    def now(self) -> datetime:
        wall = datetime.now(UTC) - self._mark.wall
        return self._mark.simulated + wall * self._mark.speed

    def stream_time(self, at: datetime) -> datetime:
        return self._mark.wall + (at - self._mark.simulated) / self._mark.speed


def clock_of(data_dir: Path, demo: bool) -> Clock:
    """What the CLI reads time from: the demo's clock while a demo left its reading here."""
    mark = _read(data_dir) if demo else None
    return ReadClock(mark) if mark is not None else SystemClock()
