"""The Chip Activator runner: starts a saga for each `Provisioned` chip and drives it; it
also relinks a chip the gateway logged out (`RelinkRequested`), since it owns the instance.

Driving is a loop of pure and impure halves: fold the saga's events, ask `next_action`,
`perform` it, `decide` on the outcome, append the events. A restart (or SIGKILL) loses
nothing but the step in flight, which is safe to repeat; `run` resumes every unfinished saga
before it takes new chips. One activator runs at a time, by lease (`run_activator`); one that
runs on after losing it would lose the append races (expected sequence) with the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from julia_chips.activation.effects import ActivationPorts, perform
from julia_chips.activation.model import steps as act
from julia_chips.activation.model.saga import Saga, decide, evolve, fold, next_action
from julia_chips.activation.saga_log import ActivationLog
from julia_chips.chip_failures import chip_failed
from julia_chips.clock import Clock
from julia_chips.contract import chip as chip_ev
from julia_chips.contract.activation import RegistrarKind
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream, chip_id_of_event_subject
from julia_chips.jetstream.event_stream import WriteConflict
from julia_chips.jetstream.pull_feed import stream_seq
from julia_chips.jetstream.stored_chip_event import read_chip_event
from julia_chips.prometheus import STALE_READS

log = logging.getLogger(__name__)

DURABLE = "activator"
PART = "activator"  # its label in julia_chip_failures_total
RETRY_DELAY = 1.0  # seconds before a chip's failed step is tried again
STALE_READ_DELAY = 0.05  # seconds before a saga read short of our own append is read again
RegistrarChoice = Callable[[chip_ev.Provisioned], RegistrarKind]


class ActivatorSettings(msgspec.Struct, frozen=True, kw_only=True):
    policy: act.SagaPolicy = act.SagaPolicy()
    max_concurrent: int = 50  # sagas stepping at once; the rest queue
    default_registrar: RegistrarKind = "vps"  # for new chips; `run` takes JULIA_REGISTRAR's


DEFAULT_SETTINGS = ActivatorSettings()


class StaleSaga(Exception):
    """The saga read ends before an event this activator appended: the answer came from a
    replica (or an old leader) behind the one that acked the append. Folding it would drive
    an older saga, or none at all (a saga with no events is finished), and the chip would
    wait in `activating` with nothing said."""

    def __init__(self, chip_id: str, read: int, appended: int) -> None:
        super().__init__(f"saga of {chip_id} read up to sequence {read}, "
                         f"but {appended} was appended")


class Activator:
    """:param choose_registrar: per-chip registrar for a new saga (default:
        `settings.default_registrar`); a saga in flight keeps the registrar it recorded."""

    def __init__(self, ports: ActivationPorts, clock: Clock,
                 settings: ActivatorSettings = DEFAULT_SETTINGS,
                 choose_registrar: RegistrarChoice | None = None) -> None:
        self._ports = ports
        self._clock = clock
        self._settings = settings
        self._choose = choose_registrar or (lambda _p: settings.default_registrar)
        self._log = ActivationLog(ports.js)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._reload: set[str] = set()
        # the last sequence this activator appended to each saga it drives: a read that ends
        # before it is stale (StaleSaga); forgotten when the saga's task ends
        self._appended: dict[str, int] = {}
        self._gate = asyncio.Semaphore(settings.max_concurrent)
        self._stopping = asyncio.Event()

    @property
    def js(self) -> JetStreamContext:
        return self._ports.js

    async def run(self) -> None:
        """Resume unfinished sagas, then follow chip events for new `Provisioned` chips, until
        `stop()` (within a second: one fetch) or cancelled; the sagas in flight are cancelled."""
        for chip_id in await self._log.unfinished():
            self._spawn(chip_id)
        log.info("activator resumed %d unfinished activation(s)", len(self._running))
        config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=30.0,
                                filter_subject="chip.evt.>")
        sub = await self.js.pull_subscribe("chip.evt.>", durable=DURABLE,
                                           stream=Stream.CHIP_EVENTS, config=config)
        try:
            while not self._stopping.is_set():
                try:
                    batch = await sub.fetch(64, timeout=1.0)
                except TimeoutError:
                    continue
                for msg in batch:
                    try:
                        await self._on_chip_event(msg)
                    except Exception:  # this chip's start waits; the others go on
                        chip_failed(PART, chip_id_of_event_subject(msg.subject),
                                    "starting its activation")
                        await msg.nak(delay=RETRY_DELAY)
                        continue
                    await msg.ack()
        finally:
            await self._stop_sagas()

    def stop(self) -> None:
        self._stopping.set()

    async def _on_chip_event(self, msg: Msg) -> None:
        event = read_chip_event("activator", msg.subject, stream_seq(msg), msg.data,
                                msg.headers)
        if isinstance(event, chip_ev.Provisioned):
            await self.request(event)
        elif isinstance(event, chip_ev.ActivationRetried):
            await self._advance(event.chip_id, act.RetryAsked())
        elif isinstance(event, chip_ev.Retired):
            await self._advance(event.chip_id, act.RetireSeen(
                banned=event.previous_status is Status.BANNED))
        elif isinstance(event, chip_ev.RelinkRequested):
            await self._advance(event.chip_id, act.RelinkSeen())

    async def request(self, provisioned: chip_ev.Provisioned) -> None:
        """Record the saga's start (a repeat is a no-op) and drive it."""
        chip_id = provisioned.chip_id
        outcome = act.Requested(registrar=self._choose(provisioned), ddd=provisioned.ddd,
                                phone_number=provisioned.phone_number,
                                salvy_account_id=provisioned.salvy_account_id)
        await self._advance(chip_id, outcome)

    async def _advance(self, chip_id: str, outcome: act.Outcome) -> None:
        """Record what a chip event means for its saga (a repeat: nothing) and drive it; a
        saga in flight loses its next append to this one, reloads and takes it up."""
        saga, last = await self._load(chip_id)
        new = decide(saga, outcome, self._clock.now(), self._settings.policy)
        if new:
            self._note_appended(chip_id, await self._log.append(chip_id, new, last))
            self._spawn(chip_id)

    def _spawn(self, chip_id: str) -> None:
        """Drive the saga; one already driven reloads once more before its task ends, so an
        event appended after its last look (a `Retired`) is not left undone."""
        running = self._running.get(chip_id)
        if running is not None and not running.done():
            self._reload.add(chip_id)
            return
        task = asyncio.create_task(self._drive(chip_id), name=f"activation-{chip_id}")
        self._running[chip_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._running.get(chip_id) is done:
                del self._running[chip_id]
                self._appended.pop(chip_id, None)

        task.add_done_callback(forget)

    async def _drive(self, chip_id: str) -> None:
        async with self._gate:
            while True:
                try:
                    self._reload.discard(chip_id)
                    await self._drive_once(chip_id)
                    if chip_id not in self._reload:
                        return
                except WriteConflict:
                    log.warning("activation of %s moved under us: reloading", chip_id)
                except StaleSaga as stale:
                    log.warning("activation: %s (a replica behind): reading again", stale)
                    STALE_READS.labels(reader=PART).inc()
                    await asyncio.sleep(STALE_READ_DELAY)
                except Exception:  # NATS hiccup: back off, then refold and continue
                    chip_failed(PART, chip_id, "driving its activation")
                    await asyncio.sleep(RETRY_DELAY)

    async def _load(self, chip_id: str) -> tuple[Saga, int]:
        """The saga as stored, and the sequence its next append must expect.

        :raises StaleSaga: the read ends before what this activator appended to it."""
        events, last = await self._log.load(chip_id)
        if last < (appended := self._appended.get(chip_id, 0)):
            raise StaleSaga(chip_id, last, appended)
        return fold(chip_id, events), last

    def _note_appended(self, chip_id: str, seq: int) -> None:
        self._appended[chip_id] = max(seq, self._appended.get(chip_id, 0))

    async def _drive_once(self, chip_id: str) -> None:
        saga, last = await self._load(chip_id)
        policy = self._settings.policy
        while not isinstance(action := next_action(saga, policy, self._clock.now()),
                             act.Finished):
            outcome = await perform(self._ports, self._clock, saga, action, policy)
            if outcome is None:
                continue
            new = decide(saga, outcome, self._clock.now(), policy)
            last = await self._log.append(chip_id, new, last)
            self._note_appended(chip_id, last)
            for event in new:
                saga = evolve(saga, event)
                _log_progress(saga, event)

    async def _stop_sagas(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_progress(saga: Saga, event: object) -> None:
    name = type(event).__name__
    if name in ("AttemptFailed", "ActivationAbandoned", "LinkTryFailed"):
        log.warning("activation of %s: %s (%s)", saga.chip_id, name,
                    getattr(event, "reason", ""))
    else:
        log.info("activation of %s: %s", saga.chip_id, name)
