"""Close every warming chip's day at local midnight (America/Sao_Paulo).

It keeps each chip's open warm day by folding CHIP_EVENTS (actors.warm_schedule), and on
each tick sends `CloseWarmDay` to the chips whose midnight has passed. Exactly once per chip
and day without coordination: the command id is fixed by chip and day, so a second
scheduler, or this one restarted between sending and seeing the result, repeats an id the
chip actor has already answered (or names a day that is no longer open), and nothing is
appended twice. It polls the clock instead of sleeping until midnight, so an accelerated or
stepped clock moves it as fast as the test wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from prometheus_client import Counter

from julia_chips.chip.client import ChipClient
from julia_chips.chip_failures import chip_failed
from julia_chips.clock import Clock
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.chip_commands import CloseWarmDay
from julia_chips.jetstream.stored_chip_event import follow_chip_events
from julia_chips.supervisor import run_until
from julia_chips.warmer.model.schedule import SAO_PAULO, WarmDay, close_command, follow, is_due

log = logging.getLogger(__name__)
PART = "warmer_scheduler"  # its label in julia_chip_failures_total
WARM_DAY_CLOSES = Counter("julia_warm_day_closes_total", "CloseWarmDay commands answered",
                          ["ok"])


class WarmerScheduler:
    """:param tick: real seconds between clock checks.
    :param resend_after: real seconds before an unanswered close is sent again.
    """

    def __init__(self, nc: NATS, clock: Clock, *, tick: float = 1.0, resend_after: float = 30.0,
                 tz: ZoneInfo = SAO_PAULO, concurrency: int = 64) -> None:
        self._clock = clock
        self._tick = tick
        self._resend_after = resend_after
        self._tz = tz
        self._client = ChipClient(nc)
        self._feed = follow_chip_events(nc.jetstream(), self._on_event)
        self._days: dict[str, WarmDay] = {}
        self._sent: dict[str, float] = {}  # command id -> monotonic time it was sent
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()

    def _on_event(self, event: AnyChipEvent) -> None:
        try:
            day = follow(self._days.get(event.chip_id), event)
        except Exception:
            chip_failed(PART, event.chip_id, f"following {type(event).__name__}")
            return
        if day is not None:
            self._days[event.chip_id] = day

    @property
    def warming(self) -> dict[str, WarmDay]:
        """Chips with an open warm day, by chip id."""
        return {chip: day for chip, day in self._days.items() if day.open}

    async def run(self) -> None:
        await self._feed.start()
        try:
            while not self._stopping.is_set():
                await self.close_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._tick)
        finally:
            await self._feed.stop()
            await self._client.close()

    def stop(self) -> None:
        self._stopping.set()

    async def close_due(self) -> int:
        """Send the closes that are due now (not those sent moments ago); how many."""
        now = self._clock.now()
        horizon = time.monotonic() - self._resend_after
        due = [(day.chip_id, close_command(day)) for day in self._days.values()
               if self._is_due(day, now)]
        due = [(chip, c) for chip, c in due if self._sent.get(c.command_id, -1e18) < horizon]
        for _, command in due:
            self._sent[command.command_id] = time.monotonic()
        await asyncio.gather(*(self._close(chip, command) for chip, command in due))
        self._forget_answered()
        return len(due)

    def _is_due(self, day: WarmDay, now: datetime) -> bool:
        try:
            return is_due(day, now, self._tz)
        except Exception:  # e.g. a day opened at a time no midnight follows
            chip_failed(PART, day.chip_id, "checking its warm day")
            return False

    async def _close(self, chip_id: str, command: CloseWarmDay) -> None:
        async with self._slots:
            try:
                reply = await self._client.send(chip_id, command)
            except TimeoutError:
                log.warning("no answer to %s yet; it stays stored and will be retried",
                            command.command_id)
                return
            except NatsError as err:  # no stream, an API error, the connection closing
                log.warning("%s not sent (%s: %s); retried in %.0fs", command.command_id,
                            type(err).__name__, err, self._resend_after)
                return
            except Exception:  # resent after `resend_after`, like an unanswered one
                chip_failed(PART, chip_id, f"sending {command.command_id}")
                return
        WARM_DAY_CLOSES.labels(ok=str(reply.ok).lower()).inc()
        if not reply.ok:  # e.g. the day was closed by another scheduler: nothing to do
            log.info("%s refused: %s", command.command_id, reply.error)

    def _forget_answered(self) -> None:
        """Drop sent ids whose day has moved on, so the map stays the size of the fleet."""
        live = {close_command(day).command_id for day in self.warming.values()}
        for command_id in [c for c in self._sent if c not in live]:
            del self._sent[command_id]


async def run_warmer_scheduler(nc: NATS, clock: Clock, stop: asyncio.Event, *,
                               tick: float = 1.0) -> None:
    """Entry point for `julia-chips run`: schedule until `stop` is set; a failure raises at
    once, for the supervisor to restart it."""
    await run_until(WarmerScheduler(nc, clock, tick=tick), stop)
