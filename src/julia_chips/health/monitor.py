"""The health monitor: folds gateway signals into chip health, tells chips to rest, resume,
relink (a logout) or record a ban, and engages the fleet brake on a burst of bans.

Inputs: typed signals on `gw.obs.>` (durable consumer `health-monitor`, see
ingest/observation_log.py) and CHIP_EVENTS (instance or number -> chip from `Activated`, in
ingest/gateway_chips.py; status and cooling from the rest, bans for the brake). Outputs:
chip commands (stored on CHIP_CMDS; the ids are deterministic, so a repeat is deduped by the
chip) and brake events on `fleet.evt.brake`.

Signals are acked only after the traffic counters they produced were handed to the chips,
so a crash loses none (a crash between the two may count a batch twice: the ids of a
refolded batch differ).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from prometheus_client import Counter

from julia_chips.chip.model.lifecycle import ChipState, evolve
from julia_chips.chip_failures import chip_failed
from julia_chips.clock import Clock
from julia_chips.config import Config
from julia_chips.contract import chip as ev
from julia_chips.contract.activation import chip_of_instance
from julia_chips.contract.chip_commands import AnyChipCommand
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.fleet import AnyFleetEvent
from julia_chips.contract.observations import HealthSignal, SmsReceived
from julia_chips.contract.subjects import (
    FLEET_BRAKE_RELEASE,
    GATEWAY_SIGNALS,
    HEALTH_MONITOR_LEASE,
    Stream,
    chip_command,
)
from julia_chips.health.brake_log import BrakeLog
from julia_chips.health.model import brake as brake
from julia_chips.health.model.monitoring import (
    DEFAULT_HEALTH,
    ChipHealth,
    HealthPolicy,
    decide,
    follow,
    take_traffic,
)
from julia_chips.health.model.monitoring import observe as observe_signal
from julia_chips.health.model.signals import signal_time
from julia_chips.ingest.gateway_chips import GatewayChips
from julia_chips.ingest.observation_log import ObservationUnreadable, decode_observation
from julia_chips.jetstream.consumer_reset import reset_to_ack_floor
from julia_chips.jetstream.dead_letters import send_to_dead_letters
from julia_chips.jetstream.event_stream import WriteConflict
from julia_chips.jetstream.part_lease import part_lease, run_while_holding
from julia_chips.jetstream.reply_subjects import DEFAULT_REPLY_PREFIXES, reply_refusal
from julia_chips.jetstream.stored_chip_event import follow_chip_events

log = logging.getLogger(__name__)
PART = "health_monitor"  # its label in julia_chip_failures_total
SIGNALS = Counter("julia_health_signals_total", "Gateway signals folded or rejected", ["result"])
_NOT_YET_ACTIVATED = frozenset({ev.Status.PROVISIONING, ev.Status.ACTIVATING})
HEALTH_COMMANDS = Counter("julia_health_commands_total", "Commands the monitor issued", ["type"])


class SignalRejected(ValueError):
    """A message on `gw.obs.>` that is not a valid signal; the message says why."""


def _health_signal(data: bytes) -> HealthSignal:
    try:
        observation = decode_observation(data)
    except ObservationUnreadable as exc:
        raise SignalRejected(f"malformed signal: {exc}") from exc
    if isinstance(observation, SmsReceived):  # belongs on gw.sms.<account>, not here
        raise SignalRejected("malformed signal: an SMS is not a health signal")
    return observation


class HealthMonitorSettings(msgspec.Struct, frozen=True, kw_only=True):
    policy: HealthPolicy = DEFAULT_HEALTH
    brake: brake.BrakePolicy = brake.DEFAULT_BRAKE
    flush_interval: float = 2.0  # real seconds between ObserveTraffic batches
    flush_signals: int = 20_000  # ... or after this many signals, whichever comes first
    tick: float = 1.0  # real seconds between resume and brake checks
    fetch_batch: int = 1000
    fetch_wait: float = 0.5  # seconds a pull waits for signals (shorter ones orphan pulls)
    max_skew: timedelta = timedelta(days=7)  # a signal further from our clock is nonsense
    durable: str = "health-monitor"
    reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES  # where the release is answered


DEFAULT_MONITOR = HealthMonitorSettings()


def monitor_settings(config: Config) -> HealthMonitorSettings:
    """The configured brake and reply prefixes; the rest as tuned here."""
    policy = brake.BrakePolicy(threshold=config.brake_threshold,
                               window=timedelta(minutes=config.brake_window_minutes),
                               cool_off=timedelta(hours=config.brake_cool_off_hours))
    return HealthMonitorSettings(brake=policy, reply_prefixes=config.reply_prefixes)


class HealthMonitor:
    def __init__(self, nc: NATS, clock: Clock,
                 settings: HealthMonitorSettings = DEFAULT_MONITOR) -> None:
        self._nc, self._js = nc, nc.jetstream()
        self._clock = clock
        self._settings = settings
        self._states: dict[str, ChipState] = {}
        self.chips: dict[str, ChipHealth] = {}  # chips that were activated, by chip id
        self._gateway_chips = GatewayChips()
        self.brake = brake.BrakeState()
        self._brake_log = BrakeLog(self._js)
        self.feed = follow_chip_events(self._js, self._on_chip_event)
        self._issued: dict[str, float] = {}  # command id -> monotonic time, to send once
        self._touched: set[str] = set()
        self._unflushed: list[Msg] = []
        self._last_flush = time.monotonic()
        self._batches = 0
        self.folded = self.rejected = self.commands_sent = 0
        self._stopping = asyncio.Event()

    def _on_chip_event(self, event: ev.AnyChipEvent) -> None:
        try:
            self._follow(event)
        except Exception:
            chip_failed(PART, event.chip_id, f"following {type(event).__name__}")

    def _follow(self, event: ev.AnyChipEvent) -> None:
        chip_id = event.chip_id
        state = evolve(self._states.get(chip_id) or ChipState(chip_id=chip_id), event)
        self._states[chip_id] = state
        self._gateway_chips.fold(event)
        if isinstance(event, ev.Activated):
            self.chips[chip_id] = ChipHealth(chip=state)
        elif chip_id in self.chips:
            self.chips[chip_id] = follow(self.chips[chip_id], event, state)
            self._touched.add(chip_id)
        if isinstance(event, ev.Banned):
            self.brake = brake.ban_seen(self.brake, chip_id, event.occurred_at,
                                        self._settings.brake)

    async def run(self) -> None:
        self.brake = await self._brake_log.load(self.brake)
        await self.feed.start()
        release = await self._nc.subscribe(FLEET_BRAKE_RELEASE, cb=self._on_release)
        sub = await self._js.pull_subscribe(
            GATEWAY_SIGNALS, durable=self._settings.durable, stream=Stream.GATEWAY_OBS,
            config=ConsumerConfig(ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL,
                                  ack_wait=max(30.0, 5 * self._settings.flush_interval),
                                  max_ack_pending=4 * self._settings.flush_signals))
        # Signals a stopped or crashed monitor took but did not hand on come again first, in
        # order, rather than after `ack_wait` behind newer ones (a close after the reopen).
        await reset_to_ack_floor(self._nc, Stream.GATEWAY_OBS, self._settings.durable)
        last_tick = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    await self._pull(sub)
                    if time.monotonic() - last_tick >= self._settings.tick:
                        last_tick = time.monotonic()
                        await self.check()
                    if self._flush_due():
                        await self.flush()
                except Exception:  # NATS hiccup: unacked signals come back; keep running
                    log.exception("health monitor round failed; retrying")
                    await asyncio.sleep(self._settings.tick)
        finally:
            await self.flush()
            await release.unsubscribe()
            await self.feed.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _pull(self, sub: JetStreamContext.PullSubscription) -> None:
        try:
            msgs = await sub.fetch(self._settings.fetch_batch,
                                   timeout=self._settings.fetch_wait)
        except TimeoutError:  # nats-py raises its own or asyncio's: both are TimeoutError
            return
        now = self._clock.now()
        for msg in msgs:
            await self._fold(msg, now)
        self._unflushed.extend(msgs)
        await self._decide(self._touched)
        self._touched = set()

    async def _fold(self, msg: Msg, now: object) -> None:
        try:
            signal = _health_signal(msg.data)
            chip_id = self._gateway_chips.chip_of(signal)
            if chip_id is None and self._activating(signal.instance):
                SIGNALS.labels(result="before_activation").inc()  # the link opening: the
                return  # activator's to watch, not evidence about a chip in service
            if chip_id is None:
                raise SignalRejected(f"unknown instance {signal.instance[:60]!r}: no Activated "
                                     "event names it or its number")
            if abs(signal_time(signal) - now) > self._settings.max_skew:  # type: ignore[operator]
                raise SignalRejected(f"timestamp {signal_time(signal).isoformat()} is more "
                                     f"than {self._settings.max_skew} from now")
        except SignalRejected as rejected:
            await self._reject(msg, str(rejected))
            return
        try:
            self.chips[chip_id] = observe_signal(self.chips[chip_id], signal,
                                                 self._settings.policy)
        except Exception as exc:
            chip_failed(PART, chip_id, "folding a signal")
            await self._reject(msg, f"chip {chip_id} could not fold it: {exc!r}")
            return
        self._touched.add(chip_id)
        self.folded += 1

    def _activating(self, instance: str) -> bool:
        """`instance` is the instance of a chip not yet activated (provisioning or
        activating): its connection events come before its `Activated` names it."""
        chip_id = chip_of_instance(instance)
        state = self._states.get(chip_id) if chip_id is not None else None
        return state is not None and state.status in _NOT_YET_ACTIVATED

    async def _reject(self, msg: Msg, reason: str) -> None:
        """Bad input loses nothing: the bytes go to `dlq.obs.<instance>` with the reason."""
        self.rejected += 1
        SIGNALS.labels(result="rejected").inc()
        log.warning("signal on %s rejected: %s", msg.subject, reason)
        key = msg.subject.split(".", 2)[-1]
        await send_to_dead_letters(self._js, "obs", key, msg.data, reason, msg.subject)

    async def check(self) -> None:
        """What time alone changes: rests that ended, the brake's cool-off."""
        cooling = {c for c, h in self.chips.items() if h.chip.status is ev.Status.COOLING}
        await self._decide(cooling)
        await self._apply_brake(brake.decide(self.brake, self._clock.now(),
                                             self._settings.brake))

    async def _decide(self, chip_ids: set[str]) -> None:
        now = self._clock.now()
        due = [(c, command) for c in chip_ids for command in self._decisions(c, now)]
        fresh = [(c, command) for c, command in due if command.command_id not in self._issued]
        for chip_id, command in fresh:
            log.info("chip %s: %s (%s)", chip_id, type(command).__name__,
                     getattr(command, "reason", "rest over, connection open"))
        await self._send(fresh)
        # A brake decision can follow from the bans these commands cause; check it here too.
        await self._apply_brake(brake.decide(self.brake, now, self._settings.brake))

    def _decisions(self, chip_id: str, now: datetime) -> list[AnyChipCommand]:
        try:
            return decide(self.chips[chip_id], now, self._settings.policy)
        except Exception:
            chip_failed(PART, chip_id, "deciding")
            return []

    def _flush_due(self) -> bool:
        return bool(self._unflushed) and (
            len(self._unflushed) >= self._settings.flush_signals
            or time.monotonic() - self._last_flush >= self._settings.flush_interval)

    async def flush(self) -> None:
        """Hand the pending counters to the chips, then ack the signals they came from."""
        self._batches += 1
        batch: list[tuple[str, AnyChipCommand]] = []
        now = self._clock.now()
        for chip_id, health in self.chips.items():
            if health.pending:
                try:
                    health, traffic = take_traffic(
                        health, f"obs:{chip_id}:{now.timestamp():.6f}:{self._batches}", now,
                        self._settings.policy)
                except Exception:
                    chip_failed(PART, chip_id, "taking its traffic")
                    continue
                self.chips[chip_id] = health
                if traffic is not None:
                    batch.append((chip_id, traffic))
        await self._send(batch)
        if self._unflushed:
            await self._unflushed[-1].ack()  # AckPolicy.ALL: acks every earlier one too
            SIGNALS.labels(result="folded").inc(len(self._unflushed))
        self._unflushed = []
        self._last_flush = time.monotonic()

    async def _send(self, commands: list[tuple[str, AnyChipCommand]]) -> None:
        """Store the commands for the chips; the actors answer nobody (no reply_to)."""
        for start in range(0, len(commands), 256):
            chunk = commands[start:start + 256]
            await asyncio.gather(*(self._js.publish(chip_command(chip), ENCODER.encode(command))
                                   for chip, command in chunk))
        for _, command in commands:
            self._issued[command.command_id] = time.monotonic()
            HEALTH_COMMANDS.labels(type=type(command).__name__).inc()
        self.commands_sent += len(commands)
        if len(self._issued) > 100_000:
            horizon = time.monotonic() - 3600
            self._issued = {c: t for c, t in self._issued.items() if t > horizon}

    async def _apply_brake(self, events: list[AnyFleetEvent]) -> None:
        for event in events:
            try:
                await self._brake_log.append(event)
            except WriteConflict:  # another monitor moved the brake: see what it recorded
                self.brake = await self._brake_log.load(self.brake)
                continue
            self.brake = brake.evolve(self.brake, event)
            log.warning("fleet brake: %s (%s)", type(event).__name__, event.reason)

    async def _on_release(self, msg: Msg) -> None:
        await self._apply_brake(brake.release(self.brake, self._clock.now()))
        if not msg.reply:
            return
        if refused := reply_refusal(msg.reply, self._settings.reply_prefixes, "reply"):
            log.warning("brake release not answered: %s", refused)  # released all the same
            return
        await self._nc.publish(msg.reply, ENCODER.encode({"ok": True,
                                                              "engaged": self.brake.engaged}))


async def run_health_monitor(nc: NATS, clock: Clock, stop: asyncio.Event, lease_ttl: float,
                             settings: HealthMonitorSettings = DEFAULT_MONITOR,
                             holder: str | None = None) -> None:
    """Entry point for `julia-chips run`: monitor while holding the monitor's lease, stand by
    while another process does, until `stop` is set. One monitor at a time: two would share
    the signals out between them and judge each chip on part of its evidence."""
    lease = await part_lease(nc, HEALTH_MONITOR_LEASE, holder)
    await run_while_holding(lease, lease_ttl, lambda: HealthMonitor(nc, clock, settings), stop)
