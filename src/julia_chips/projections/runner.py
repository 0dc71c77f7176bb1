"""Run one projection: a durable JetStream pull consumer feeding batched transactions.

The checkpoint in PostgreSQL is the truth and the consumer only a cursor: on start (and
whenever the cursor is found past the checkpoint) the durable consumer is recreated at
`checkpoint + 1`. A batch is applied in one transaction with its checkpoint, events at or
below the checkpoint are skipped, and the messages are acked only after the commit; so a
crash or redelivery never applies an event twice or skips one. PostgreSQL or NATS going
away only pauses the loop: the same batch is retried with backoff until it commits. An event
PostgreSQL refuses for its data goes to the dead letters, and the projection moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.jetstream.dead_letters import send_to_dead_letters
from julia_chips.projections import checkpoints
from julia_chips.projections.base import Envelope, Projection
from julia_chips.prometheus import DEAD_LETTERS

log = logging.getLogger(__name__)

BATCH = 1000
ACK_WAIT = 120.0  # seconds: a batch may wait this long for PostgreSQL before redelivery
MAX_BACKOFF = 5.0
# Errors that mean "a dependency is away", not "this batch is wrong".
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, NatsError,
             asyncio.TimeoutError)


def _is_poison(err: Exception) -> bool:
    """The event is what is wrong, not a dependency: PostgreSQL refuses its data (SQLSTATE
    class 22 or 23), asyncpg cannot encode one of its values (a ValueError), or the
    projection's own code raised on it. Anything else that PostgreSQL says (a missing table,
    a deadlock, a shutdown) is retried: dead-lettering would lose every event meanwhile."""
    if isinstance(err, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError | ValueError):
        return True
    return not isinstance(err, TRANSIENT)


class _Behind(Exception):
    """The projection we depend on has not reached this batch yet."""


class _CursorAhead(Exception):
    """The consumer delivered past `checkpoint + 1`: deliveries were lost with a crash."""


def durable_name(name: str) -> str:
    return f"projection_{name}"


class ProjectionRunner:
    def __init__(self, projection: Projection, nc: NATS, database_url: str,
                 batch: int = BATCH) -> None:
        self.projection = projection
        self._js: JetStreamContext = nc.jetstream()
        self._database_url = database_url
        self._batch = batch
        self._conn: asyncpg.Connection | None = None
        self._stopping = asyncio.Event()
        self.applied_seq = 0  # last committed sequence, for tests and logs

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until `stop()`; never gives up on a dependency that went away."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self._consume()
                backoff = 0.1
            except TRANSIENT as err:
                log.warning("projection %s: %s: %s; retrying in %.1fs", self.projection.name,
                            type(err).__name__, err, backoff)
            except Exception:
                # A bug, not an outage: say so loudly, and keep the read model alive.
                log.exception("projection %s failed; retrying in %.1fs", self.projection.name,
                              backoff)
            else:
                continue
            await self._close_conn()
            await self._sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)
        await self._close_conn()

    async def _consume(self) -> None:
        sub = await self._subscribe()
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await sub.fetch(self._batch, timeout=0.5)
                except TimeoutError:  # nothing new within the wait (nats-py or asyncio)
                    continue
                if not msgs:  # a fetch can end on a status message with nothing in it
                    continue
                try:
                    if not await self._commit(msgs):
                        return
                except _CursorAhead:
                    log.info("projection %s: cursor past checkpoint; rewinding",
                             self.projection.name)
                    return
                await msgs[-1].ack()  # AckPolicy.ALL: acknowledges the whole batch
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        """The durable consumer, recreated at the checkpoint."""
        start = await checkpoints.read(await self._connection(), self.projection.name) + 1
        name, stream = durable_name(self.projection.name), str(self.projection.stream)
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(stream, name)
        config = ConsumerConfig(
            durable_name=name, ack_policy=AckPolicy.ALL, ack_wait=ACK_WAIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
            max_ack_pending=self._batch * 4, filter_subject=self.projection.subjects)
        await self._js.add_consumer(stream, config)
        return await self._js.pull_subscribe_bind(name, stream=stream)

    async def _commit(self, msgs: Sequence[Msg]) -> bool:
        """True once the batch is committed; False when stopped while waiting on `after`.

        A batch refused for its data is applied again one event at a time: the event that
        is refused alone goes to the dead letters and the checkpoint passes it, so one bad
        event does not stop the read model (it stays in the stream, for a rebuild once the
        projection can take it).
        """
        batch = [self._envelope(m) for m in msgs]
        try:
            return await self._commit_batch(batch)
        except _CursorAhead:
            raise
        except Exception as err:
            if not _is_poison(err):
                raise
            log.warning("projection %s: batch at seq %d..%d refused (%s); applying its events "
                        "one at a time", self.projection.name, batch[0].seq, batch[-1].seq,
                        type(err).__name__)
        for msg, item in zip(msgs, batch, strict=True):
            try:
                if not await self._commit_batch([item]):
                    return False
            except _CursorAhead:
                raise
            except Exception as err:
                if not _is_poison(err):
                    raise
                await self._dead_letter(msg, item.seq, err)
                if not await self._commit_batch([Envelope(item.seq, None)]):
                    return False
        return True

    async def _dead_letter(self, msg: Msg, seq: int, err: Exception) -> None:
        """The reason goes with the letter, not into the log: PostgreSQL's message may quote
        the event's values (a phone number, a text)."""
        name = self.projection.name
        await send_to_dead_letters(self._js, "projection", name, msg.data,
                                   f"projection {name}, seq {seq}: {type(err).__name__}: {err}",
                                   msg.subject)
        DEAD_LETTERS.labels(kind="projection").inc()
        log.error("projection %s: seq %d refused (%s); sent to the dead letters, moving on",
                  name, seq, type(err).__name__)

    async def _commit_batch(self, batch: list[Envelope]) -> bool:
        backoff = 0.02
        while not self._stopping.is_set():
            try:
                await self._apply(await self._connection(), batch)
                return True
            except _Behind:
                await self._sleep(backoff)
                backoff = min(1.0, backoff * 2)
        return False

    async def _apply(self, conn: asyncpg.Connection, batch: list[Envelope]) -> None:
        p = self.projection
        async with conn.transaction():
            await checkpoints.lock(conn, p.name)
            done = await checkpoints.read(conn, p.name)
            if batch[0].seq > done + 1 and done + 1 >= await self._first_seq():
                raise _CursorAhead
            fresh = [e for e in batch if e.seq > done]
            if not fresh:
                return
            if p.after is not None and await checkpoints.read(conn, p.after) < fresh[-1].seq:
                raise _Behind
            fold = await p.begin(conn, fresh)
            for item in fresh:
                fold.feed(item)
            await fold.upsert(conn)
            await checkpoints.write(conn, p.name, fresh[-1].seq)
        self.applied_seq = fresh[-1].seq

    async def _first_seq(self) -> int:
        """The stream's oldest sequence: a gap below it is history that no longer exists."""
        info = await self._js.stream_info(str(self.projection.stream))
        return int(info.state.first_seq or 1)

    def _envelope(self, msg: Msg) -> Envelope:
        seq = msg.metadata.sequence.stream
        try:
            return Envelope(seq, self.projection.decode(msg))
        except Exception as err:  # a bad event is skipped here and stays in the stream
            log.error("projection %s: seq %d undecodable (%s); skipped", self.projection.name,
                      seq, err)
            return Envelope(seq, None)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._database_url, timeout=5, command_timeout=60)
        return self._conn

    async def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2)
            self._conn = None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
