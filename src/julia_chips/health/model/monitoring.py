"""A chip's health: gateway signals folded over a sliding window, and what to do about them.

`observe` folds one signal, `follow` one chip event, `decide` returns the commands the chip
should get (Cool, Resume, ReportBan) and `take_traffic` the ObserveTraffic batch, scored. All pure:
time comes in as `now` or in the signal itself. Command ids derive from the chip's version,
so deciding again before the chip's answer arrives repeats the same id and the actor dedupes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from julia_chips.chip.model.lifecycle import OBSERVABLE, RELINKABLE, ChipState, next_cooling
from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.contract.observations import (
    AccountNotice,
    ConnectionUpdate,
    HealthSignal,
    InboundMessage,
    MessageStatus,
    SendRefused,
    TrafficCounted,
)
from julia_chips.health.model.evidence import Finding, Source, Verdict, classify, stronger
from julia_chips.health.model.signals import signal_time

COOLABLE = frozenset({Status.WARMING, Status.READY, Status.ACTIVE})
MAX_BATCH = 100_000  # ObserveTraffic's per-field bound
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class HealthPolicy(msgspec.Struct, frozen=True, kw_only=True):
    bucket_seconds: int = 600  # the window moves in 10-minute steps
    window_buckets: int = 6  # an hour of signals decides the score
    min_sample: int = 20  # fewer sends in the window prove nothing about delivery
    cool_delivery_rate: float = 0.70  # delivered / sent below this rests the chip
    cool_failure_rate: float = 0.20  # failed / sent above this rests the chip
    storm_disconnects: int = 10  # drops in the window that make a reconnect storm
    reply_memory: timedelta = timedelta(hours=12)  # an inbound within this counts as a reply


DEFAULT_HEALTH = HealthPolicy()


class Counters(msgspec.Struct, frozen=True, kw_only=True):
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    failed: int = 0
    received: int = 0
    disconnects: int = 0

    def __add__(self, o: Counters) -> Counters:
        return Counters(sent=self.sent + o.sent, delivered=self.delivered + o.delivered,
                        read=self.read + o.read, replied=self.replied + o.replied,
                        failed=self.failed + o.failed, received=self.received + o.received,
                        disconnects=self.disconnects + o.disconnects)

    def __bool__(self) -> bool:
        return any(getattr(self, f) for f in self.__struct_fields__)


NOTHING = Counters()
_STATUS_COUNTS = {"SERVER_ACK": Counters(sent=1), "DELIVERY_ACK": Counters(delivered=1),
                  "READ": Counters(read=1), "ERROR": Counters(failed=1)}


class HealthScore(msgspec.Struct, frozen=True, kw_only=True):
    score: float  # 1 healthy .. 0 unusable
    window: Counters
    delivery: float
    failure: float
    reply: float

    def describe(self) -> str:
        w = self.window
        return (f"score={self.score:.2f} sent={w.sent} delivery={self.delivery:.2f} "
                f"failure={self.failure:.2f} reply={self.reply:.2f} disconnects={w.disconnects}")


class ChipHealth(msgspec.Struct, frozen=True, kw_only=True):
    chip: ChipState  # the chip as its events say: status, cooling_until, cool streak
    connection: str = "open"  # Activated means linked; a drop or close says otherwise
    window: tuple[tuple[int, Counters], ...] = ()  # (bucket number, counts), oldest first
    pending: Counters = NOTHING  # not yet sent to the chip as ObserveTraffic
    awaiting: frozenset[str] = frozenset()  # phones written to lately: their message is a reply
    awaited: frozenset[str] = frozenset()  # the generation before
    generation: int = 0  # reply_memory periods since _EPOCH of `awaiting`
    finding: Finding | None = None  # the strongest evidence not acted on yet


def observe(health: ChipHealth, signal: HealthSignal,
            policy: HealthPolicy = DEFAULT_HEALTH) -> ChipHealth:
    """Fold one signal: window and pending counters, connection state, evidence."""
    at = signal_time(signal)
    health = _rotate_replies(health, at, policy)
    delta, finding = NOTHING, None
    match signal:
        case MessageStatus(status=status):
            delta = _STATUS_COUNTS.get(status, NOTHING)
            if status == "SERVER_ACK" and signal.remote_phone not in health.awaiting:
                health = msgspec.structs.replace(
                    health, awaiting=health.awaiting | {signal.remote_phone})
        case InboundMessage(from_phone=phone):
            replied = phone in health.awaiting or phone in health.awaited
            delta = Counters(received=1, replied=int(replied))
            if replied:
                health = msgspec.structs.replace(health, awaiting=health.awaiting - {phone},
                                                 awaited=health.awaited - {phone})
        case TrafficCounted():
            delta = Counters(sent=signal.sent, delivered=signal.delivered, read=signal.read,
                             replied=signal.replied, failed=signal.failed,
                             received=signal.received)
        case ConnectionUpdate():
            delta, finding = _connection(health, signal)
            health = msgspec.structs.replace(health, connection=signal.state)
        case SendRefused():
            source = Source.CLOUD_API_ERROR if signal.gateway == "cloud_api" else \
                Source.EVOLUTION_SEND
            delta, finding = Counters(failed=1), classify(source, signal.code)
        case AccountNotice():
            source = Source.CLOUD_API_QUALITY if signal.field == "phone_number_quality_update" \
                else Source.CLOUD_API_ACCOUNT
            finding = classify(source, signal.event)
    if finding is not None and finding.verdict is not Verdict.TRANSIENT:
        health = msgspec.structs.replace(health, finding=stronger(health.finding, finding))
    if not delta:
        return health
    return msgspec.structs.replace(health, window=_add(health.window, at, delta, policy),
                                   pending=health.pending + delta)


def _connection(health: ChipHealth, update: ConnectionUpdate) -> tuple[Counters, Finding | None]:
    """A drop counts towards a reconnect storm; only a close names evidence."""
    dropped = health.connection == "open" and update.state != "open"
    delta = Counters(disconnects=1) if dropped else NOTHING
    if update.state in ("close", "refused") and update.status_reason is not None:
        return delta, classify(Source.EVOLUTION_CLOSE, update.status_reason)
    return delta, None


def _bucket(at: datetime, policy: HealthPolicy) -> int:
    """The window bucket `at` falls in."""
    return int((at - _EPOCH).total_seconds()) // policy.bucket_seconds


def _add(window: tuple[tuple[int, Counters], ...], at: datetime, delta: Counters,
         policy: HealthPolicy) -> tuple[tuple[int, Counters], ...]:
    bucket = _bucket(at, policy)
    if window and window[-1][0] == bucket:
        return (*window[:-1], (bucket, window[-1][1] + delta))
    if window and bucket < window[-1][0]:  # late signal: into its bucket if still kept
        return tuple((b, c + delta if b == bucket else c) for b, c in window)
    oldest = bucket - policy.window_buckets + 1
    return (*((b, c) for b, c in window if b >= oldest), (bucket, delta))


def _rotate_replies(health: ChipHealth, at: datetime, policy: HealthPolicy) -> ChipHealth:
    generation = int((at - _EPOCH) / policy.reply_memory)
    if generation <= health.generation:
        return health
    awaited = health.awaiting if generation == health.generation + 1 else frozenset()
    return msgspec.structs.replace(health, awaiting=frozenset(), awaited=awaited,
                                   generation=generation)


def score(health: ChipHealth, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH
          ) -> HealthScore:
    """The window's figures and a score in [0, 1]: delivery, failures, replies, stability."""
    oldest = _bucket(now, policy) - policy.window_buckets + 1
    total = NOTHING
    for bucket, counts in health.window:
        if bucket >= oldest:
            total = total + counts
    sample = total.sent >= policy.min_sample
    delivery = min(1.0, total.delivered / total.sent) if total.sent else 1.0
    failure = min(1.0, total.failed / total.sent) if total.sent else 0.0
    reply = min(1.0, total.replied / total.delivered) if total.delivered else 0.0
    stability = 1.0 - min(1.0, total.disconnects / policy.storm_disconnects)
    value = (0.45 * delivery + 0.35 * (1 - failure) + 0.2 * stability) if sample else stability
    return HealthScore(score=round(value, 4), window=total, delivery=delivery, failure=failure,
                       reply=reply)


def decide(health: ChipHealth, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH
           ) -> list[cmd.AnyChipCommand]:
    """The chip commands the monitor should send now: at most one (ban, relink, resume or
    cool), often none. It returns commands, not events, because the chip actor alone decides
    and records what happens to a chip; no command to react to, so no `command` argument.
    A relinking chip only waits for the activator, unless the gateway proves a ban."""
    chip, finding = health.chip, health.finding
    status = chip.status
    if status not in OBSERVABLE and status is not Status.RELINKING:
        return []
    key = f"{chip.chip_id}:{chip.version}"
    if finding is not None and finding.verdict is Verdict.BAN:
        return [cmd.ReportBan(command_id=f"ban:{key}", reason=finding.reason,
                              evidence=finding.evidence)]
    if status is Status.RELINKING:
        return []
    if finding is not None and finding.verdict is Verdict.RELINK and status in RELINKABLE:
        return [cmd.Relink(command_id=f"relink:{key}", reason=finding.reason,
                           evidence=finding.evidence)]
    if status is Status.COOLING:
        resting = chip.cooling_until is None or now < chip.cooling_until
        return [] if resting or health.connection != "open" else \
            [cmd.Resume(command_id=f"resume:{key}")]
    if finding is not None:
        return [_cool(health, now, finding.reason, finding.min_rest)]
    figures = score(health, now, policy)
    sample = figures.window.sent >= policy.min_sample
    if sample and (figures.delivery < policy.cool_delivery_rate
                   or figures.failure > policy.cool_failure_rate):
        return [_cool(health, now, f"health degraded: {figures.describe()}", None)]
    if figures.window.disconnects >= policy.storm_disconnects:
        return [_cool(health, now, f"reconnect storm: {figures.describe()}", None)]
    return []


def escalating_rest(chip: ChipState, now: datetime) -> timedelta:
    """The rest the chip itself will pick for `Cool` without `until` (chip_lifecycle)."""
    return next_cooling(chip, now)[1]


def _cool(health: ChipHealth, now: datetime, reason: str, min_rest: timedelta | None
          ) -> cmd.Cool:
    chip = health.chip
    until = None  # the chip's own escalation, unless the evidence asks for a longer rest
    if min_rest is not None and min_rest > escalating_rest(chip, now):
        until = now + min_rest
    return cmd.Cool(command_id=f"cool:{chip.chip_id}:{chip.version}", reason=reason[:1000],
                    until=until)


def follow(health: ChipHealth, event: ev.AnyChipEvent, chip: ChipState) -> ChipHealth:
    """Take the chip's state after `event`; a decision the chip acted on is spent."""
    replace = msgspec.structs.replace
    match event:
        case ev.Resumed() | ev.Reinstated():
            # A fresh start: the signals that caused the rest must not cause the next one.
            return replace(health, chip=chip, window=(), finding=None, connection="open")
        case ev.Cooled() | ev.RelinkRequested() | ev.Relinked():
            keep = health.finding if health.finding and \
                health.finding.verdict is Verdict.BAN else None
            return replace(health, chip=chip, finding=keep)
        case ev.Banned() | ev.Retired():
            return replace(health, chip=chip, finding=None)
    return replace(health, chip=chip)


def take_traffic(health: ChipHealth, command_id: str, now: datetime,
                 policy: HealthPolicy = DEFAULT_HEALTH
                 ) -> tuple[ChipHealth, cmd.ObserveTraffic | None]:
    """The pending counters as one ObserveTraffic, with the chip's score at `now`: the chip
    records it, so the read model and the balancer's tie-breaks see what the monitor sees.
    The remainder of a huge batch waits."""
    p = health.pending
    sent = {f: min(MAX_BATCH, getattr(p, f)) for f in
            ("sent", "delivered", "read", "replied", "failed", "received")}
    if not any(sent.values()) or health.chip.status not in OBSERVABLE:
        return msgspec.structs.replace(health, pending=NOTHING), None
    rest = Counters(**{f: getattr(p, f) - n for f, n in sent.items()})
    return msgspec.structs.replace(health, pending=rest), cmd.ObserveTraffic(
        command_id=command_id, health_score=score(health, now, policy).score, **sent)
