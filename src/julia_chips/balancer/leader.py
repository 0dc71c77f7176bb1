"""The balancer while it holds the lease: rebuilt state, chip reactions, failover, backlog.

Decisions happen synchronously in the event loop (decide, then evolve at once), so the
in-memory state is never read half-updated; the I/O they cause (appends, gateway calls,
replies) runs afterwards in one mailbox per doctor, which keeps each doctor's events in
order. Any failed write means the state may be ahead of the streams: the leader steps down
and whoever leads next rebuilds from the streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
from nats.aio.client import Client as NATS

from julia_chips.balancer.dispatch import WhatsAppSender, crashed_attempt, dispatch
from julia_chips.balancer.metrics import (
    BACKLOG,
    BACKLOG_OLDEST,
    FAILOVER_SECONDS,
)
from julia_chips.balancer.model.backlog_pass import serve_backlog
from julia_chips.balancer.model.decide import Event
from julia_chips.balancer.model.failover import orphaned_chips, plan_failover, plan_pool
from julia_chips.balancer.model.fleet import SERVING
from julia_chips.balancer.model.protection import DEFAULT_PROTECTION, ProtectionPolicy
from julia_chips.balancer.model.state import (
    ATTEMPT_MEMORY_DAYS,
    BalancerState,
    apply_chip_event,
    apply_fleet_event,
    evolve,
)
from julia_chips.balancer.route_log import RouteLog, append_message_event
from julia_chips.chip.client import ChipClient
from julia_chips.clock import Clock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import AnyChipEvent, Status
from julia_chips.contract.fleet import AnyFleetEvent
from julia_chips.contract.route import ReplyStatus
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.follower import Follower, body, replay, with_headers
from julia_chips.jetstream.mailbox import Mailboxes
from julia_chips.jetstream.reply_subjects import DEFAULT_REPLY_PREFIXES
from julia_chips.jetstream.stored_chip_event import chip_event_of
from julia_chips.phones import normalise_phone
from julia_chips.privacy.doctor_keys import DoctorKeys

log = logging.getLogger(__name__)
Job = Callable[[], Awaitable[None]]
_FLEET = msgspec.json.Decoder(AnyFleetEvent)
READER = "balancer"  # in the logs and counts of messages skipped while rebuilding


class BalancerSettings(msgspec.Struct, frozen=True, kw_only=True):
    max_active: int = 10  # MAX_CHIPS_ACTIVE
    lease_ttl: float = 10.0  # seconds; a standby takes over a leader not proved dead after it
    ack_wait: float = 30.0  # seconds before an unanswered request is redelivered
    max_deliver: int = 5
    backlog_every: float = 1.0  # seconds between backlog passes (new day, freed capacity)
    ledger_horizon: timedelta = timedelta(days=ATTEMPT_MEMORY_DAYS)  # caps look back a week
    protection: ProtectionPolicy = DEFAULT_PROTECTION
    reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES  # where answers may go
    phone_secret: bytes = b""  # the key of the phones' hash in ROUTE_EVENTS (JULIA_PHONE_KEY)


class FailoverTiming(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    status: str
    reassigned: int
    quarantined: int
    seconds: float  # from receiving the chip event to the last reassignment stored


class Leader:
    def __init__(self, nc: NATS, clock: Clock, settings: BalancerSettings,
                 sender: WhatsAppSender, failovers: list[FailoverTiming]) -> None:
        self.nc, self.js = nc, nc.jetstream()
        self.clock, self.settings, self.sender = clock, settings, sender
        self.state = BalancerState(settings.phone_secret)
        self.publisher = AckedPublisher(nc)  # route and ledger appends: the hot path
        self.keys = DoctorKeys(self.js)  # opens and seals what the backlog holds
        self.routes = RouteLog(self.js, self.publisher, self.keys)
        self.failovers = failovers
        self.mailboxes: Mailboxes[Job] = Mailboxes(self._run_job)
        self.deposed = asyncio.Event()
        self.in_flight: set[str] = set()  # attempt ids this leader is dispatching now
        self._chips = ChipClient(nc)
        self._pool_pending: dict[str, float] = {}  # chip -> monotonic deadline of the ask
        self._caught_up = False
        self._passes = 0
        self._followers: list[Follower[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def rebuild(self) -> None:
        """Fold the streams into state, settle crashed attempts, redo unfinished failovers."""
        started = time.monotonic()
        await self.keys.load_all()
        await replay(self.js, Stream.ROUTE_EVENTS, "route.evt.>",
                     with_headers(rt.decode_route_event), self._apply_route, reader=READER)
        since = self.clock.stream_time(self.clock.now() - self.settings.ledger_horizon)
        await replay(self.js, Stream.MSG_EVENTS, "msg.evt.>",
                     body(msg.decode_message_event), self._apply_ledger,
                     reader=READER, since=since)
        self._followers = [
            Follower(self.js, Stream.CHIP_EVENTS, "chip.evt.>", chip_event_of(READER),
                     self._on_chip, reader=READER),
            Follower(self.js, Stream.FLEET_EVENTS, "fleet.evt.>", body(_FLEET.decode),
                     self._on_fleet, reader=READER)]
        for follower in self._followers:
            await follower.start()
        self._caught_up = True
        for attempt_id, attempt in list(self.state.attempts.items()):
            if attempt.outcome is None:
                unknown = crashed_attempt(attempt_id, attempt.chip_id, self.clock)
                await append_message_event(self.publisher, unknown)
                evolve(self.state, unknown)
                log.warning("attempt %s had no outcome: marked unknown, not re-sent", attempt_id)
        for chip_id in orphaned_chips(self.state):
            version = self.state.fleet.chips[chip_id].version
            self._fail_over(chip_id, f"takeover-{chip_id}-{version}")
        self.tend_pool()
        log.info("balancer state rebuilt in %.2fs: %d chips, %d doctors, %d waiting",
                 time.monotonic() - started, len(self.state.fleet.chips), len(self.state.doctors),
                 len(self.state.backlog))

    def _apply_route(self, seq: int, event: rt.AnyRouteEvent) -> None:
        if isinstance(event, rt.RequestQueued):  # erased when the doctor's key is gone
            event = event.opened_with(self.keys.get(event.doctor_id))
        evolve(self.state, event)
        self.routes.note(event.doctor_id, seq)

    def _apply_ledger(self, _seq: int, event: msg.AnyMessageEvent) -> None:
        evolve(self.state, event)

    def _on_fleet(self, _seq: int, event: AnyFleetEvent) -> None:
        apply_fleet_event(self.state, event)

    def _on_chip(self, seq: int, event: AnyChipEvent) -> None:
        before = self.state.fleet.chips.get(event.chip_id)
        chip = apply_chip_event(self.state, event)
        if not self._caught_up or before is None or before.status is chip.status:
            return
        self._pool_pending.pop(chip.chip_id, None)
        if before.status in SERVING and chip.status is not Status.ACTIVE:
            self._fail_over(chip.chip_id, f"failover-{seq}")
        if chip.status in SERVING:
            self.serve_backlog()
        self.tend_pool()

    def _fail_over(self, chip_id: str, cause_id: str) -> None:
        started = time.monotonic()
        events = plan_failover(self.state, chip_id, self.clock.now(), cause_id,
                               self.settings.protection)
        if not events:
            return
        done: list[asyncio.Future[None]] = []
        for event in events:
            evolve(self.state, event)
            done.append(self.post_tracked(event.doctor_id, self._appender([event])))
        status = self.state.fleet.chips[chip_id].status
        timing = {"chip_id": chip_id, "status": status.value if status else "unknown",
                  "reassigned": sum(isinstance(e, rt.ConversationReassigned) for e in events),
                  "quarantined": sum(isinstance(e, rt.DoctorQuarantined) for e in events)}
        self.spawn(self._time_failover(started, done, timing))

    async def _time_failover(self, started: float, done: list[asyncio.Future[None]],
                             timing: dict[str, str | int]) -> None:
        await asyncio.gather(*done, return_exceptions=True)
        record = FailoverTiming(seconds=time.monotonic() - started, **timing)  # type: ignore[arg-type]
        self.failovers.append(record)
        FAILOVER_SECONDS.observe(record.seconds)
        log.info("failover of chip %s (%s): %d reassigned, %d quarantined in %.3fs",
                 record.chip_id, record.status, record.reassigned, record.quarantined,
                 record.seconds)

    def _appender(self, events: list[Event]) -> Job:
        async def append() -> None:
            for event in events:
                if isinstance(event, rt.RouteEvent):
                    await self.routes.append(event)
        return append

    def serve_backlog(self) -> None:
        """Serve what fits now; each request's I/O runs in its doctor's mailbox."""
        self._passes += 1
        for serving in serve_backlog(self.state, self.clock.now(), f"backlog-{self._passes}",
                                     self.settings.protection):
            for event in serving.events:
                evolve(self.state, event)
            self.post(serving.entry.doctor_id, self._served(serving.entry, serving.events))
        self.report_backlog()

    def _served(self, entry: rt.RequestQueued, events: list[Event]) -> Job:
        async def serve() -> None:
            attempt = next((e for e in events if isinstance(e, msg.SendAttempted)), None)
            await self._appender([e for e in events if not isinstance(e, rt.RequestServed)])()
            if attempt is not None and entry.doctor_phone is not None and entry.text is not None:
                await self.send(attempt, entry.doctor_phone, entry.text)  # never erased here
            await self._appender([e for e in events if isinstance(e, rt.RequestServed)])()
        return serve

    async def send(self, attempt: msg.SendAttempted, phone: str, text: str) -> ReplyStatus:
        """Dispatch an attempt already folded into state; returns its outcome."""
        self.in_flight.add(attempt.attempt_id)
        try:
            instance = self.state.fleet.chips[attempt.chip_id].instance or attempt.chip_id
            outcome = await dispatch(self.publisher, self.sender, self.clock, attempt, instance,
                                     normalise_phone(phone), text)
        finally:
            self.in_flight.discard(attempt.attempt_id)
        if outcome is None:
            return ReplyStatus.UNKNOWN
        evolve(self.state, outcome)  # type: ignore[arg-type]
        return self.state.attempts[attempt.attempt_id].outcome or ReplyStatus.UNKNOWN

    def report_backlog(self) -> None:
        """The leader's live backlog gauges (the read API has its own, from the stream)."""
        oldest = next(iter(self.state.backlog.values()), None)
        BACKLOG.set(len(self.state.backlog))
        age = (self.clock.now() - oldest.occurred_at).total_seconds() if oldest else 0.0
        BACKLOG_OLDEST.set(max(0.0, age))

    def tend_pool(self) -> None:
        now = time.monotonic()
        self._pool_pending = {c: t for c, t in self._pool_pending.items() if t > now}
        for move in plan_pool(self.state, self.settings.max_active, self._pool_pending):
            self._pool_pending[move.chip_id] = now + 30.0
            self.spawn(self._move_chip(move.chip_id, move.promote, move.reason))

    async def _move_chip(self, chip_id: str, promote: bool, reason: str) -> None:
        version = self.state.fleet.chips[chip_id].version  # same ask, same id: the chip dedupes it
        command: cmd.AnyChipCommand = (
            cmd.PutInService(command_id=f"balancer-in-{version}") if promote
            else cmd.TakeOutOfService(command_id=f"balancer-out-{version}", reason=reason))
        try:
            reply = await self._chips.send(chip_id, command, timeout=self.settings.ack_wait)
        except Exception as err:
            log.warning("pool move of chip %s not confirmed: %s", chip_id, type(err).__name__)
            return
        log.info("%s chip %s (%s): %s", "promoted" if promote else "took out", chip_id, reason,
                 "ok" if reply.ok else reply.error)

    def post(self, doctor_id: str, job: Job) -> None:
        """Run `job` in the doctor's mailbox, after the jobs posted there before it."""
        self.mailboxes.post(doctor_id, job)

    def post_tracked(self, doctor_id: str, job: Job) -> asyncio.Future[None]:
        """`post`, with a future that is done once the job ended (failover timing)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def tracked() -> None:
            try:
                await job()
            finally:
                if not done.done():
                    done.set_result(None)
        self.mailboxes.post(doctor_id, tracked)
        return done

    async def _run_job(self, doctor_id: str, job: Job) -> None:
        try:
            await job()
        except Exception as err:
            # The state is ahead of the streams now: step down, the next leader rebuilds.
            log.error("write for doctor %s failed (%s): stepping down", doctor_id, err)
            self.deposed.set()

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for follower in self._followers:
            await follower.stop()
        await self.mailboxes.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._chips.close()

