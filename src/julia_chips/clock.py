"""One injectable clock, so tests and the demo can run a warm-up day in seconds.

The clock is the domain's time: warm days and their midnights, quiet hours, rests, the
brake's cool-off, quarantines, the webhook replay window. Process time is not on it: lease
TTLs, renewals, supervision backoffs, reply timeouts and JetStream's own stamps stay real,
because they are about processes that die and networks that stall, which an accelerated demo
does not speed up. `stream_time` turns a clock reading into JetStream's time where the two
meet (a follower that starts "8 days ago").
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

STREAM_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before every stored message


class Clock(Protocol):
    """Where the system reads the time: always timezone-aware UTC."""

    def now(self) -> datetime: ...

    def stream_time(self, at: datetime) -> datetime:
        """The wall-clock instant (JetStream stores messages by it) that stands for `at`."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def stream_time(self, at: datetime) -> datetime:
        return at


class FixedClock:
    """A clock that moves only when told to: unit tests and deterministic replays."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def stream_time(self, at: datetime) -> datetime:
        return at

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


class AcceleratedClock:
    """Simulated time that runs `speed` times faster than the wall clock.

    With `speed=86400 / 10` a warm-up day passes in ten real seconds.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware start")
        self._start = start
        self.speed = speed
        self._origin = time.monotonic()
        self._wall_origin = datetime.now(UTC)

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def begin(self) -> None:
        """Read `start` again from this moment on: the seconds servers took to come up,
        before any part ran, are not the demo's (at its speed they are hours)."""
        self._origin = time.monotonic()
        self._wall_origin = datetime.now(UTC)

    def stream_time(self, at: datetime) -> datetime:
        """Instants of this clock's run map back at `speed`; an earlier one maps to the
        epoch: how long the system was stopped before is unknown, so a fold that starts
        there reads the whole stream, the safe side."""
        if at < self._start:
            return STREAM_EPOCH
        return self._wall_origin + (at - self._start) / self.speed
