"""Supervise a process's long-running parts: restart one that fails, say so by its name, and
give up when it cannot recover, so that systemd restarts the whole process.

A part that dies unseen is worse than one that crashes the process: its lease may still be
renewed and `/health` still says 200, so nobody takes over and nobody is told. Every part is
given as a factory (a fresh coroutine per start); a failure is logged with the part's name
and retried after an exponential backoff with a cap. A part that ends because its `stopping`
event was set is not restarted. `status` is what `/health` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import msgspec

from julia_chips.clock import Clock
from julia_chips.jetstream.part_lease import Part

log = logging.getLogger(__name__)
PartFactory = Callable[[], Coroutine[Any, Any, None]]


class SupervisionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    first_backoff: float = 0.5  # seconds before the first restart; doubled after each failure
    max_backoff: float = 30.0  # seconds: the cap of that doubling
    max_restarts: int = 10  # failures in a row a part may have; one more and the process gives up
    stable_after: float = 60.0  # seconds a restarted part must run to count as recovered


DEFAULT_SUPERVISION = SupervisionPolicy()


class PartStatus(msgspec.Struct, frozen=True, kw_only=True):
    running: bool
    restarting_since: datetime | None  # the first failure of the current run of failures
    last_error: str | None
    restarts: int  # since the process started


class _Record:
    """One part's history, kept by its supervision loop."""

    def __init__(self) -> None:
        self.running = False
        self.started_at: datetime | None = None
        self.down_since: datetime | None = None
        self.last_error: str | None = None
        self.failures_in_a_row = 0
        self.restarts = 0

    def status(self, now: datetime, stable_after: float) -> PartStatus:
        recovered = (self.running and self.started_at is not None
                     and now - self.started_at >= timedelta(seconds=stable_after))
        return PartStatus(running=self.running,
                          restarting_since=None if recovered else self.down_since,
                          last_error=self.last_error, restarts=self.restarts)


class Supervisor:
    def __init__(self, clock: Clock, policy: SupervisionPolicy = DEFAULT_SUPERVISION) -> None:
        self._clock = clock
        self._policy = policy
        self._records: dict[str, _Record] = {}
        self.given_up = asyncio.Event()  # a part cannot recover: the process should stop
        self.gave_up_on: str | None = None

    def start(self, name: str, factory: PartFactory, stopping: asyncio.Event
              ) -> asyncio.Task[None]:
        """Run `factory()` as the part `name`, again after each failure, until `stopping`."""
        self._records[name] = record = _Record()
        return asyncio.create_task(self._supervise(name, record, factory, stopping), name=name)

    async def until_stopped(self, stop: asyncio.Event) -> bool:
        """Wait for `stop`, or for a part to be given up, and then set `stop` so that the
        other parts end cleanly too. False when a part was given up: the process should exit
        with an error."""
        stopped = asyncio.create_task(stop.wait())
        given_up = asyncio.create_task(self.given_up.wait())
        try:
            await asyncio.wait((stopped, given_up), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            given_up.cancel()
        stop.set()
        return self.gave_up_on is None

    def status(self) -> dict[str, PartStatus]:
        now = self._clock.now()
        return {name: record.status(now, self._policy.stable_after)
                for name, record in self._records.items()}

    def down_longer_than(self, grace: float) -> list[str]:
        """Parts not running that have been failing for more than `grace` seconds."""
        horizon = self._clock.now() - timedelta(seconds=grace)
        return [name for name, s in self.status().items()
                if not s.running and s.restarting_since is not None
                and s.restarting_since < horizon]

    async def _supervise(self, name: str, record: _Record, factory: PartFactory,
                         stopping: asyncio.Event) -> None:
        while True:
            record.running, record.started_at = True, self._clock.now()
            error: Exception | None = None
            try:
                await factory()
            except Exception as err:  # a cancellation is a stop: it goes through
                error = err
            finally:
                record.running = False
            if stopping.is_set():  # not restarted, but a failure on the way out is still told
                if error is not None:
                    log.warning("part %s failed while stopping (%s: %s)", name,
                                type(error).__name__, error, exc_info=error)
                return
            delay = self._failed(name, record, error)
            if delay is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                return
            record.restarts += 1

    def _failed(self, name: str, record: _Record, error: Exception | None) -> float | None:
        """Log the failure; the backoff before the next start, or None when the part cannot
        recover. `error` None: the part returned although nobody stopped it."""
        now = self._clock.now()
        assert record.started_at is not None
        if now - record.started_at >= timedelta(seconds=self._policy.stable_after):
            record.failures_in_a_row, record.down_since = 0, None  # it had recovered
        record.failures_in_a_row += 1
        record.down_since = record.down_since or now
        record.last_error = (f"{type(error).__name__}: {error}"[:500] if error is not None
                             else "ended on its own")
        if record.failures_in_a_row > self._policy.max_restarts:
            log.error("part %s failed (%s) and cannot recover after %d restarts: giving up",
                      name, record.last_error, self._policy.max_restarts, exc_info=error)
            self.gave_up_on = self.gave_up_on or name
            self.given_up.set()
            return None
        delay = min(self._policy.max_backoff,
                    self._policy.first_backoff * 2.0 ** (record.failures_in_a_row - 1))
        log.error("part %s failed (%s); restarting in %.1fs", name, record.last_error, delay,
                  exc_info=error)
        return delay


async def run_until(part: Part, stop: asyncio.Event) -> None:
    """`part.run()` until `stop` is set, then `part.stop()` and wait for it to end. A part that
    fails before that raises here at once, not when `stop` comes, so its supervisor sees it."""
    running = asyncio.create_task(part.run())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait((running, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        part.stop()
        await running
