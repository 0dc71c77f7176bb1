"""The observation deriver: raw webhooks in GATEWAY_IN become typed observations in GATEWAY_OBS.

The webhook edge validates a body and stores it raw before its 200, one publish on the request
path. This durable consumer (`observation-deriver`) reads GATEWAY_IN in stream order, decodes
each body with the decoders the edge validated it with, and stores the fact in GATEWAY_OBS.
Acks are cumulative (AckPolicy.ALL): one ack covers every body up to the newest whose
observation, and every one's before it, JetStream has acked, so a crash loses none. Each pass
starts by resetting the durable to its ack floor (and a failed store ends the pass): the bodies
after it come again in stream order, so observations keep their bodies' order even across a
crash, and are not stored twice: the observation's `Nats-Msg-Id` is the raw message's plus
`:obs` (within GATEWAY_OBS's duplicate window, 2 minutes), and a new tenure first skips the
bodies up to the one named by the newest observation's `Julia-Raw-Seq` (however long the
deriver was down; a Cloud API body may hold several observations, and one cut between them, as
`Julia-Raw-Part` tells, is derived again). Bodies are taken a batch at a time: after the first,
the next ones gather for `linger` (10 ms) and come in one answer, so a steady trickle costs a
write and a wakeup per batch, on our side and the server's, not per body.

The durable starts at the messages stored after it was first created: bodies stored before it
existed came through an ingress that stored their observations itself. Create it (`prepare`)
before the ingress takes its first webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from asyncio import CancelledError
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from julia_chips.contract.observations import Observation
from julia_chips.contract.subjects import DERIVER_LEASE, JuliaHeader, Stream, SubjectTokenInvalid
from julia_chips.gateways.cloud_api.webhook import decode_cloud_api
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.ingest.observation_log import observation_message, observation_subject
from julia_chips.ingest.outcomes import Ignored, WebhookRejected
from julia_chips.jetstream.acked_publish import AckedPublisher, PubAck
from julia_chips.jetstream.consumer_reset import reset_to_ack_floor
from julia_chips.jetstream.dead_letters import send_to_dead_letters
from julia_chips.jetstream.part_lease import part_lease, run_while_holding
from julia_chips.jetstream.pull_feed import GatheringPullFeed, stream_seq

log = logging.getLogger(__name__)
DERIVED = Counter("julia_observations_derived_total", "Raw webhooks the deriver handled",
                  ["result"])
_DERIVED, _IGNORED, _REJECTED = (DERIVED.labels(result=r) for r in ("derived", "ignored",
                                                                   "rejected"))


class DeriverSettings(msgspec.Struct, frozen=True, kw_only=True):
    durable: str = "observation-deriver"
    window: int = 256  # observations stored but not yet acked by JetStream
    ack_wait: float = 30.0  # seconds before an unacked raw message is delivered again
    publish_timeout: float = 5.0  # seconds for GATEWAY_OBS's ack; then the raw one is retried
    # seconds a stored body may wait for others, so that they are derived as one batch: a
    # write and a wakeup per batch, not per body (see `GatheringPullFeed`); observations trail
    # the webhooks by up to this much more
    linger: float = 0.01
    tend: float = 0.5  # seconds between checks of the stop flag and the pull's liveness


DEFAULT_DERIVER = DeriverSettings()


class RawUnreadable(ValueError):
    """A stored body the decoders refuse: the edge validated it, so another writer or another
    version put it there. The message says why."""


def derive(subject: str, data: bytes, received_at: datetime) -> tuple[Observation, ...]:
    """The observations one raw webhook carries, in body order; none for what we ignore on
    purpose. An Evolution or Salvy body carries at most one, a Cloud API body any number.

    :param subject: `gw.in.<source>.<key>`, naming the decoder.
    :param received_at: our clock when the edge took the body in (UTC).
    :raises RawUnreadable: a body or a name the decoders refuse.
    """
    source = subject.split(".")[2] if subject.count(".") >= 3 else ""
    try:
        if source == "evolution":
            found: tuple[Observation | Ignored, ...] = (
                decode_evolution(data, received_at=received_at),)
        elif source == "salvy":
            found = (decode_salvy(data),)
        elif source == "cloud_api":
            found = decode_cloud_api(data).facts
        else:
            raise RawUnreadable(f"no decoder for source {source[:40]!r}")
        facts = tuple(f for f in found if not isinstance(f, Ignored))
        for fact in facts:
            observation_subject(fact)  # a name that is not one token cannot be stored
    except (WebhookRejected, SubjectTokenInvalid) as exc:
        raise RawUnreadable(str(exc)) from exc
    return facts


def receipt_time(msg: Msg) -> datetime:
    """The edge's receipt time, else when JetStream stored the body (both UTC). A stamp
    without a zone names no instant (and would be refused downstream): JetStream's is one."""
    stamp = (msg.headers or {}).get(JuliaHeader.RECEIVED_AT)
    if stamp:
        with contextlib.suppress(ValueError):
            if (received := datetime.fromisoformat(stamp)).tzinfo is not None:
                return received
    return msg.metadata.timestamp.astimezone(UTC)


@dataclass(slots=True)
class _Delivery:
    msg: Msg
    settled: bool = False  # its observations are stored, or it has none to store
    storing: int = 0  # its observations sent whose acks are still to come


class ObservationDeriver:
    def __init__(self, nc: NATS, settings: DeriverSettings = DEFAULT_DERIVER) -> None:
        self._nc, self._js = nc, nc.jetstream()
        self._settings = settings
        self._publisher = AckedPublisher(nc)
        self._stores: set[asyncio.Future[PubAck]] = set()  # observations sent, ack to come
        self._rejecting: set[asyncio.Task[None]] = set()  # bodies on their way to dead letters
        self._held: deque[_Delivery] = deque()  # delivered while `window` stores were out
        self._feed: GatheringPullFeed | None = None  # this pass's
        self._stopping = asyncio.Event()
        self._unacked: deque[_Delivery] = deque()  # delivered, in stream order
        self._ack_upto: Msg | None = None  # the newest body all before which are settled
        self._ack_due = asyncio.Event()
        self._rewind = asyncio.Event()  # a store failed: derive again from the ack floor
        # GATEWAY_IN sequence up to which a crashed holder stored observations; None until
        # the first pass has looked.
        self._stored_through: int | None = None
        self.derived = self.ignored = self.rejected = 0

    async def prepare(self) -> None:
        """Create the durable (idempotent); from then on every stored body is derived."""
        config = ConsumerConfig(
            durable_name=self._settings.durable, ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.NEW, ack_wait=self._settings.ack_wait,
            max_ack_pending=4 * self._settings.window)
        try:
            info = await self._js.consumer_info(Stream.GATEWAY_IN, self._settings.durable)
        except NotFoundError:
            await self._js.add_consumer(Stream.GATEWAY_IN, config)
            return
        if info.config.ack_policy != AckPolicy.ALL:  # an earlier version acked one by one
            start = info.ack_floor.stream_seq + 1 if info.ack_floor else 1
            log.info("observation deriver: durable moves to cumulative acks at seq %d", start)
            await self._js.delete_consumer(Stream.GATEWAY_IN, self._settings.durable)
            await self._js.add_consumer(Stream.GATEWAY_IN, dataclasses.replace(
                config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start))

    async def run(self) -> None:
        """Derive until `stop()`; then let the stores in flight finish (and ack)."""
        if not await self._prepared():
            return
        while not self._stopping.is_set():
            try:
                await self._derive_from_ack_floor()
            except (NatsError, TimeoutError) as err:  # NATS away: rewind when it is back
                log.warning("observation deriver: %r; rewinding to the ack floor", err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.tend)

    async def _derive_from_ack_floor(self) -> None:
        """One pass: rewind, then derive in stream order until stopped or a store fails."""
        await reset_to_ack_floor(self._nc, Stream.GATEWAY_IN, self._settings.durable)
        if self._stored_through is None:
            self._stored_through = await self._last_stored_raw_seq()
        self._rewind.clear()
        await self._publisher.open()
        self._feed = feed = GatheringPullFeed(
            self._nc, Stream.GATEWAY_IN, self._settings.durable, self._receive,
            window=self._settings.window, linger=self._settings.linger)
        acker = asyncio.create_task(self._ack_settled())
        try:
            await feed.start()
            while not (self._stopping.is_set() or self._rewind.is_set()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.tend)
                try:
                    await feed.keep_alive()
                except NatsError as err:  # reconnecting: the next round asks again
                    log.warning("observation deriver: pull request failed (%s)", err)
        finally:
            with contextlib.suppress(NatsError):  # NATS gone: its requests went with it
                await feed.stop()
            await asyncio.gather(*self._stores, *self._rejecting, return_exceptions=True)
            acker.cancel()
            await self._ack_newest()
            self._unacked.clear()
            self._held.clear()

    async def _last_stored_raw_seq(self) -> int:
        """The body behind the newest observation: a holder that crashed may have stored the
        observations of bodies it never acked, longer ago than GATEWAY_OBS's duplicate window
        remembers. Read once per tenure, never after a failed store of ours: a failed store
        can leave a gap before a later one that landed, and that gap must be derived again."""
        last = (await self._js.stream_info(Stream.GATEWAY_OBS)).state.last_seq
        if not last:
            return 0
        # from the leader, as the stream info was: a follower may not hold `last` yet
        headers = (await self._js.get_msg(Stream.GATEWAY_OBS, last)).headers or {}
        raw_seq = int(headers.get(JuliaHeader.RAW_SEQ, 0))
        part, _, parts = headers.get(JuliaHeader.RAW_PART, "").partition("/")
        if part.isdigit() and parts.isdigit() and int(part) < int(parts):
            return raw_seq - 1  # cut between a body's parts: derive it again (ids dedupe)
        return raw_seq

    async def _prepared(self) -> bool:
        """`prepare`, retried while NATS is away; False when stopped first."""
        while not self._stopping.is_set():
            try:
                await self.prepare()
                return True
            except (NatsError, TimeoutError) as err:
                log.warning("observation deriver: consumer not created (%r); retrying", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.tend)
        return False

    def stop(self) -> None:
        self._stopping.set()

    def _receive(self, msg: Msg) -> None:
        """Each body as nats-py reads it (no await here: see `GatheringPullFeed`)."""
        if self._rewind.is_set():
            return  # unacked: it comes again after the rewind
        delivery = _Delivery(msg)
        self._unacked.append(delivery)
        if self._held or len(self._stores) >= self._settings.window:
            self._held.append(delivery)  # back-pressure: derived as stores come back
            assert self._feed is not None
            self._feed.pause()
            return
        self._derive(delivery)

    def _derive(self, delivery: _Delivery) -> None:
        msg = delivery.msg
        raw_seq = stream_seq(msg)
        if self._stored_through and raw_seq <= self._stored_through:
            self._settle(delivery)  # derived and stored before the crash: ack, do not repeat
            return
        try:
            observations = derive(msg.subject, msg.data, receipt_time(msg))
        except RawUnreadable as exc:
            rejecting = asyncio.create_task(self._reject(delivery, str(exc)))
            self._rejecting.add(rejecting)
            rejecting.add_done_callback(self._rejecting.discard)
            return
        if not observations:
            self.ignored += 1
            _IGNORED.inc()
            self._settle(delivery)
            return
        raw_id = (msg.headers or {}).get(Header.MSG_ID) or f"gw.in:{raw_seq}"
        count = len(observations)
        for n, observation in enumerate(observations):
            # The first keeps the id of a body's only observation; a crash between a body's
            # parts is told by `Julia-Raw-Part` (`_last_stored_raw_seq`).
            msg_id = raw_id + (":obs" if n == 0 else f":obs:{n}")
            try:
                # Sent in the order of their bodies, each ack awaited by a callback, not a task.
                stored = self._publisher.submit_nowait(
                    *observation_message(observation, msg_id=msg_id, raw_seq=raw_seq,
                                         part=(n + 1, count) if count > 1 else None),
                    timeout=self._settings.publish_timeout)
            except Exception as exc:
                self._not_stored(msg, exc)
                return
            delivery.storing += 1
            self._stores.add(stored)
            stored.add_done_callback(functools.partial(self._stored, delivery))

    def _stored(self, delivery: _Delivery, stored: asyncio.Future[PubAck]) -> None:
        self._stores.discard(stored)
        delivery.storing -= 1
        failure = stored.exception() if not stored.cancelled() else CancelledError()
        if failure is not None:
            self._not_stored(delivery.msg, failure)
            return
        if delivery.storing:
            return  # the body's other observations are still on their way
        self.derived += 1
        _DERIVED.inc()
        self._settle(delivery)
        while self._held and len(self._stores) < self._settings.window:
            if self._rewind.is_set():
                return
            self._derive(self._held.popleft())
        if not self._held and self._feed is not None:
            self._feed.resume()

    def _not_stored(self, msg: Msg, failure: BaseException) -> None:
        """Derive it again: rewind to the ack floor (loudly, when it is not an outage)."""
        if isinstance(failure, NatsError | TimeoutError | OSError):  # JetStream away
            log.warning("observation from %s not stored (%s); rewinding", msg.subject,
                        type(failure).__name__)
        else:  # a bug: loud, and the body stays unacked rather than stuck
            log.error("observation from %s not stored; rewinding", msg.subject,
                      exc_info=failure)
        self._rewind.set()

    def _settle(self, delivery: _Delivery) -> None:
        """Mark one body done; the run of settled bodies at the front becomes ackable."""
        delivery.settled = True
        unacked = self._unacked
        while unacked and unacked[0].settled:
            self._ack_upto = unacked.popleft().msg
            self._ack_due.set()

    async def _ack_settled(self) -> None:
        """One cumulative ack for whatever settled since the last one (AckPolicy.ALL)."""
        while True:
            await self._ack_due.wait()
            self._ack_due.clear()
            await self._ack_newest()

    async def _ack_newest(self) -> None:
        msg, self._ack_upto = self._ack_upto, None
        if msg is not None:
            with contextlib.suppress(NatsError, OSError):  # lost: the next ack covers it
                await msg.ack()

    async def _reject(self, delivery: _Delivery, reason: str) -> None:
        """Nothing is lost: the bytes go to `dlq.webhook.<source>.<key>` with the reason."""
        msg = delivery.msg
        self.rejected += 1
        _REJECTED.inc()
        log.warning("raw webhook on %s not derivable: %s", msg.subject, reason)
        key = msg.subject.split(".", 2)[-1]
        try:
            await send_to_dead_letters(self._js, "webhook", key, msg.data, reason, msg.subject)
        except (NatsError, TimeoutError, OSError) as exc:  # unacked: it comes again
            log.warning("dead letter for %s not stored (%s)", msg.subject, type(exc).__name__)
            self._rewind.set()
            return
        self._settle(delivery)


async def run_observation_deriver(nc: NATS, stop: asyncio.Event, lease_ttl: float,
                                  settings: DeriverSettings = DEFAULT_DERIVER,
                                  holder: str | None = None) -> None:
    """Entry point for `julia-chips run`: derive while holding the deriver's lease, stand by
    while another process does, until `stop` is set (call `prepare` first). Two derivers at
    once would rewind each other's durable, hence the lease."""
    lease = await part_lease(nc, DERIVER_LEASE, holder)
    await run_while_holding(lease, lease_ttl, lambda: ObservationDeriver(nc, settings), stop)
