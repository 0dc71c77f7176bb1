"""The doctor-feedback part: what doctors' phones send back, filed where it counts.

It follows GATEWAY_OBS (`gw.obs.>`, durable `doctor-feedback`). An inbound message becomes
`route.cmd.inbound` with the phone, the chip and the gateway's message id, so the balancer
records the reply or opts the phone out, and `Replied` in the message ledger on the last
send to that phone on that chip (the phone a send went to is learnt from its receipts,
replayed from GATEWAY_OBS at start); a receipt becomes `Delivered`, `Read` or
`NotDelivered`, on the attempt whose `SendDispatched` has its message id. Evolution and
Cloud API observations are filed alike: the chip is found by instance or by number
(`gateway_chips.py`). Both are idempotent, so any number of processes may share the durable
and no lease is needed: the command's `Nats-Msg-Id` derives from the instance and the
gateway's message id (a redelivery or a replayed webhook is one command, and a late repeat
changes nothing in the balancer), a receipt's event id from its attempt. A receipt may
overtake its `SendDispatched` (the gateway answers the send and reports the delivery at
once): it is looked at again `retry_delay` later, up to `max_deliver` times, then dropped
and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import timedelta

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from julia_chips.balancer.model.state import ATTEMPT_MEMORY_DAYS
from julia_chips.balancer.route_log import append_message_event
from julia_chips.clock import Clock
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.observations import InboundMessage, MessageStatus
from julia_chips.contract.subjects import GATEWAY_SIGNALS, Stream, route_command
from julia_chips.ingest.observation_log import (
    OBSERVATION_HEADER,
    Kind,
    ObservationUnreadable,
    decode_observation,
)
from julia_chips.ingest.sent_messages import SentMessages
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.follower import AlreadySkipped, Follower, body, replay
from julia_chips.jetstream.pull_feed import PullFeed, deliveries
from julia_chips.jetstream.stored_chip_event import follow_chip_events
from julia_chips.phones import normalise_phone

log = logging.getLogger(__name__)
FILED = Counter("julia_doctor_feedback_total", "Gateway observations the feedback part filed",
                ["result"])
_KINDS = frozenset({Kind.INBOUND.value, Kind.STATUS.value})
_TEXT_MAX = 65536  # route.cmd.inbound's bound; an opt-out word is far shorter

PART = "doctor feedback"  # its name as a reader of CHIP_EVENTS and MSG_EVENTS


class FeedbackSettings(msgspec.Struct, frozen=True, kw_only=True):
    durable: str = "doctor-feedback"
    ack_wait: float = 30.0  # seconds before an unacked observation is delivered again
    max_deliver: int = 10  # an unmatched receipt is dropped after this many looks
    retry_delay: float = 1.0  # seconds before an unmatched receipt is looked at again
    horizon: timedelta = timedelta(days=ATTEMPT_MEMORY_DAYS)  # sends a receipt may answer
    tend: float = 0.5  # seconds between checks of the stop flag and the pull's liveness


DEFAULT_FEEDBACK = FeedbackSettings()


def _receipt_of(m: Msg) -> MessageStatus:
    """A stored receipt, for the replay that learns which phone each send went to; the other
    kinds are passed over without decoding."""
    if (m.headers or {}).get(OBSERVATION_HEADER) != Kind.STATUS.value:
        raise AlreadySkipped
    found = decode_observation(m.data)
    if not isinstance(found, MessageStatus):
        raise AlreadySkipped
    return found


def inbound_command(observation: InboundMessage, chip_id: str | None) -> rt.InboundMessage:
    """The balancer's request for one inbound message; its id is the same for every
    delivery of the same message, so JetStream stores it once."""
    digest = hashlib.blake2b(f"{observation.instance}\0{observation.message_id}".encode(),
                             digest_size=16).hexdigest()
    return rt.InboundMessage(command_id=f"inbound-{digest}",
                             doctor_phone=normalise_phone(observation.from_phone),
                             text=observation.text[:_TEXT_MAX], chip_id=chip_id,
                             message_id=observation.message_id[:200])


class DoctorFeedback:
    def __init__(self, nc: NATS, clock: Clock,
                 settings: FeedbackSettings = DEFAULT_FEEDBACK) -> None:
        self._nc, self._js, self._clock, self._settings = nc, nc.jetstream(), clock, settings
        self._publisher = AckedPublisher(nc)
        self._sent = SentMessages()

    async def run(self, stop: asyncio.Event) -> None:
        """Rebuild what it must know from the streams, then file until `stop`."""
        since = self._clock.stream_time(self._clock.now() - self._settings.horizon)
        followers: list[Follower[AnyChipEvent] | Follower[msg.AnyMessageEvent]] = [
            follow_chip_events(self._js, self._sent.fold_chip, reader=PART),
            Follower(self._js, Stream.MSG_EVENTS, "msg.evt.>", body(msg.decode_message_event),
                     lambda _seq, event: self._sent.fold_ledger(event), reader=PART,
                     since=since)]
        for follower in followers:
            await follower.start()
        await replay(self._js, Stream.GATEWAY_OBS, GATEWAY_SIGNALS, _receipt_of,
                     lambda _seq, receipt: self._sent.fold_receipt(receipt), reader=PART,
                     since=since)
        try:
            await self._publisher.open()
            await self._ensure_consumer()
            feed = PullFeed(self._nc, Stream.GATEWAY_OBS, self._settings.durable,
                            self._receive, window=64)
            await feed.start()
            try:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._settings.tend)
                    await feed.keep_alive()
            finally:
                with contextlib.suppress(NatsError):
                    await feed.stop()
        finally:
            for follower in followers:
                with contextlib.suppress(NatsError):
                    await follower.stop()

    async def _ensure_consumer(self) -> None:
        """Every observation stored, from the first: a week-old "PARAR" still counts."""
        try:
            await self._js.consumer_info(Stream.GATEWAY_OBS, self._settings.durable)
        except NotFoundError:
            await self._js.add_consumer(Stream.GATEWAY_OBS, ConsumerConfig(
                durable_name=self._settings.durable, filter_subject=GATEWAY_SIGNALS,
                ack_policy=AckPolicy.EXPLICIT, ack_wait=self._settings.ack_wait,
                deliver_policy=DeliverPolicy.ALL, max_ack_pending=1024))

    async def _receive(self, m: Msg) -> None:
        """One observation; any failure leaves it unacked, to come again."""
        try:
            result = await self._file(m)
        except (NatsError, TimeoutError, OSError) as err:
            log.warning("feedback on %s not filed (%s); it comes again", m.subject,
                        type(err).__name__)
            return
        FILED.labels(result=result).inc()
        if result == "waiting":
            with contextlib.suppress(NatsError):
                await m.nak(delay=self._settings.retry_delay)
            return
        with contextlib.suppress(NatsError):
            await m.ack()

    async def _file(self, m: Msg) -> str:
        if (m.headers or {}).get(OBSERVATION_HEADER) not in _KINDS:
            return "skipped"  # connection updates, SMS, ...: other parts read those
        try:
            observation = decode_observation(m.data)
        except ObservationUnreadable as err:
            log.warning("observation on %s unreadable: %s", m.subject, str(err)[:200])
            return "unreadable"
        if isinstance(observation, InboundMessage):
            return await self._inbound(observation)
        if isinstance(observation, MessageStatus):
            return await self._receipt(observation, deliveries(m))
        return "skipped"

    async def _inbound(self, observation: InboundMessage) -> str:
        chip_id = self._sent.chip_of(observation)
        command = inbound_command(observation, chip_id)
        await self._publisher.publish(route_command("inbound"), ENCODER.encode(command),
                                      {Header.MSG_ID: command.command_id})
        for event in self._sent.reply_events(observation, chip_id):
            await append_message_event(self._publisher, event)
            self._sent.fold_ledger(event)
        return "inbound"

    async def _receipt(self, receipt: MessageStatus, delivered: int) -> str:
        self._sent.fold_receipt(receipt)
        events = self._sent.receipt_events(receipt)
        if events is None:
            return "waiting" if delivered < self._settings.max_deliver else "unmatched"
        for event in events:
            await append_message_event(self._publisher, event)
            self._sent.fold_ledger(event)  # type: ignore[arg-type]
        return "receipt"


async def run_doctor_feedback(nc: NATS, clock: Clock, stop: asyncio.Event,
                              settings: FeedbackSettings = DEFAULT_FEEDBACK) -> None:
    """Entry point for `julia-chips run`: file doctors' replies and receipts until `stop`."""
    await DoctorFeedback(nc, clock, settings).run(stop)
