"""Replay a stream, then follow it, for the runners that keep their own view of it.

The balancer leader, the health monitor, the warmer scheduler and a projection rebuild each
fold a stream themselves with an ordered consumer, and none may act on a half-replayed view
(closing a day already closed, routing to a chip already banned). So they share one rule
for when the replay is over, and one for a message that cannot be read.

Caught up: the consumer has nothing pending and has delivered nothing by its own count, or
the message just handed over was the last pending one. The consumer's own count, not the
stream sequence: a consumer that starts by time after every stored message reports the
stream's last sequence as "delivered" though it delivered nothing, and waiting for a
message there waited forever. A message whose `apply` raises still counts as handed over:
otherwise one bad event at the tail keeps a runner replaying for ever.

Undecodable: skipped, logged with its subject and sequence (never its body: a foreign body
may hold phone numbers or message texts), and counted. A stream keeps whatever reached its
subjects, so a reader that raised on one would stop for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import Stream
from julia_chips.prometheus import UNDECODABLE_MESSAGES

log = logging.getLogger(__name__)

T = TypeVar("T")
Decode = Callable[[Msg], T]  # the event in a message; raises for one that is none
Apply = Callable[[int, T], None]  # (stream sequence, event)


class AlreadySkipped(Exception):
    """Raised by a decoder that has logged and counted the message it skips itself (a chip
    event on another chip's subject: `read_chip_event`), so it is not counted twice."""


def body(decode: Callable[[bytes], T]) -> Decode[T]:
    """A decoder of the message body alone, for events that need no header or subject."""
    return lambda msg: decode(msg.data)


def with_headers(decode: Callable[[bytes, dict[str, str] | None], T]) -> Decode[T]:
    """A decoder of the body and its headers, for versioned events (the upcasters)."""
    return lambda msg: decode(msg.data, msg.headers)


class Follower(Generic[T]):
    """Hands `subjects`' events on `stream` to `apply`, oldest first.

    :param reader: who reads, in the log and the undecodable-message count.
    :param since: start with the messages stored from this time on (the ledger's horizon).
    :param after_seq: start after this stream sequence instead (a dashboard client resuming
        where it was, or starting at the stream's end for only what comes next).
    :param live: go on following after the replay (until `stop`); otherwise stop there.
    """

    def __init__(self, js: JetStreamContext, stream: Stream, subjects: str, decode: Decode[T],
                 apply: Apply[T], *, reader: str, since: datetime | None = None,
                 after_seq: int | None = None, live: bool = True) -> None:
        self._js, self._stream, self._subjects = js, stream, subjects
        self._decode, self._apply = decode, apply
        self._reader, self._since, self._after, self._live = reader, since, after_seq, live
        self._sub: Subscription | None = None
        self.last_seq = 0  # stream sequence of the last message handed over
        self.seen = 0  # messages handed over, folded or skipped
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        """Subscribe, and return once the messages stored before now have been handed over."""
        config = self._start_config()
        self._sub = await self._js.subscribe(
            self._subjects, stream=str(self._stream), cb=self._on_msg, ordered_consumer=True,
            config=config, deliver_policy=None if config else DeliverPolicy.ALL,
            pending_msgs_limit=-1, pending_bytes_limit=-1)
        info = await self._sub.consumer_info()
        if info.num_pending == 0 and not (info.delivered and info.delivered.consumer_seq):
            self.caught_up.set()
        await self.caught_up.wait()
        if not self._live:
            await self.stop()

    def _start_config(self) -> ConsumerConfig | None:
        if self._after is not None:
            return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                  opt_start_seq=self._after + 1)
        if self._since is not None:
            return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME,
                                  opt_start_time=self._since)
        return None

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        if not self._live and self.caught_up.is_set():
            return  # a replay ends where it caught up, whatever arrives before unsubscribing
        seq = msg.metadata.sequence.stream
        try:
            self._hand_over(seq, msg)
        finally:
            self.last_seq = seq
            self.seen += 1
            if msg.metadata.num_pending == 0:
                self.caught_up.set()

    def _hand_over(self, seq: int, msg: Msg) -> None:
        try:
            event = self._decode(msg)
        except AlreadySkipped:
            return
        except Exception as err:  # anyone's bytes: whatever fails to read is skipped
            log.warning("%s: %s sequence %d on %s is undecodable (%s); skipped",
                        self._reader, self._stream, seq, msg.subject, type(err).__name__)
            UNDECODABLE_MESSAGES.labels(reader=self._reader, stream=str(self._stream)).inc()
            return
        try:
            self._apply(seq, event)
        except Exception as err:  # our fold's bug: this event is lost to the view, not the rest
            log.error("%s: applying %s sequence %d on %s raised %s; skipped", self._reader,
                      self._stream, seq, msg.subject, type(err).__name__)


async def replay(js: JetStreamContext, stream: Stream, subjects: str, decode: Decode[T],
                 apply: Apply[T], *, reader: str, since: datetime | None = None) -> Follower[T]:
    """Hand every stored message to `apply` and return once caught up, unsubscribed; the
    follower tells how far it read (`last_seq`) and how many it saw (`seen`)."""
    follower = Follower(js, stream, subjects, decode, apply, reader=reader, since=since,
                        live=False)
    await follower.start()
    return follower
