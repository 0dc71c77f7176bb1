"""One partition's command consumer: pulls `chip.cmd.<n>.*`, runs each chip's mailbox.

A command is acked only after its events are appended and its reply sent, so a worker
killed at any point leaves it to be redelivered to the next owner, which recognises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from julia_chips.chip.actor import ChipActor
from julia_chips.chip.event_log import ChipEventLog
from julia_chips.chip.snapshots import SnapshotStore
from julia_chips.clock import Clock
from julia_chips.contract.chip_commands import CommandReply
from julia_chips.contract.codec import decode_command, encode_reply
from julia_chips.contract.subjects import (
    JuliaHeader,
    Stream,
    chip_id_of_command_subject,
    is_uuid,
    partition_commands,
)
from julia_chips.jetstream.consumer_reset import reset_to_ack_floor
from julia_chips.jetstream.dead_letters import reply_to_in, send_to_dead_letters
from julia_chips.jetstream.mailbox import Mailboxes
from julia_chips.jetstream.pull_feed import InlinePullFeed, deliveries
from julia_chips.jetstream.reply_subjects import DEFAULT_REPLY_PREFIXES, reply_refusal
from julia_chips.prometheus import COMMANDS_OK, COMMANDS_REFUSED, DEAD_LETTERS
from julia_chips.warmer.model.policy import WarmupPolicy

log = logging.getLogger(__name__)
FETCH_BATCH = 256
# Commands delivered but not yet acked, per partition: the consumer's max_ack_pending, so
# the server never hands a partition more than its mailboxes hold.
MAX_IN_FLIGHT = 2048


class PartitionSettings(msgspec.Struct, frozen=True, kw_only=True):
    ack_wait: float = 30.0
    max_deliver: int = 5
    snapshot_every: int = 50
    idle_passivate: float = 300.0
    policy: WarmupPolicy = WarmupPolicy()
    reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES  # where answers may go


class PartitionConsumer:
    def __init__(self, nc: NATS, js: JetStreamContext, partition: int, log_: ChipEventLog,
                 snapshots: SnapshotStore, clock: Clock, settings: PartitionSettings) -> None:
        self.partition = partition
        self._nc, self._js = nc, js
        self._log, self._snapshots = log_, snapshots
        self._clock = clock
        self._settings = settings
        self._actors: dict[str, ChipActor] = {}
        self._last_used: dict[str, float] = {}
        self._mailboxes: Mailboxes[Msg] = Mailboxes(self._process)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Consume until `stop()`; then let in-flight commands finish."""
        durable = f"chip-cmds-p{self.partition}"
        await self._js.add_consumer(Stream.CHIP_CMDS, ConsumerConfig(
            durable_name=durable, filter_subject=partition_commands(self.partition),
            ack_policy=AckPolicy.EXPLICIT, ack_wait=self._settings.ack_wait,
            deliver_policy=DeliverPolicy.ALL, max_ack_pending=MAX_IN_FLIGHT))
        # A previous owner's unacked commands come again first and in order, not after
        # `ack_wait` behind newer ones (the work queue dropped every acked one already).
        await reset_to_ack_floor(self._nc, Stream.CHIP_CMDS, durable)
        feed = InlinePullFeed(self._nc, Stream.CHIP_CMDS, durable, self._receive,
                              window=FETCH_BATCH)
        await feed.start()
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.5)
                await self._tend(feed)
        finally:
            await feed.stop()
            await self._mailboxes.join()
            await self._snapshot_all()

    async def _tend(self, feed: InlinePullFeed) -> None:
        try:
            await feed.keep_alive()
        except NatsError as err:  # reconnecting, or the server is restarting: try again
            log.warning("partition %d: pull request failed (%s)", self.partition, err)
        self._passivate_idle()

    def _receive(self, msg: Msg) -> None:
        """As nats-py reads it (`InlinePullFeed`): into its chip's mailbox. Back-pressure is
        the server's: at MAX_IN_FLIGHT unacked it delivers nothing more."""
        self._mailboxes.post(chip_id_of_command_subject(msg.subject), msg)

    def stop(self) -> None:
        self._stopping.set()

    async def _process(self, chip_id: str, msg: Msg) -> None:
        try:
            await self._deliver(chip_id, msg)
        except Exception:
            log.exception("command for chip %s failed; it will be redelivered", chip_id)
            self._actors.pop(chip_id, None)  # rebuild from the stream next time
            await msg.nak(delay=min(30.0, 0.5 * deliveries(msg)))

    async def _deliver(self, chip_id: str, msg: Msg) -> None:
        prefixes = self._settings.reply_prefixes
        header = (msg.headers or {}).get(JuliaHeader.REPLY_TO)
        if header and (refused := reply_refusal(header, prefixes, JuliaHeader.REPLY_TO)):
            await self._refuse_reply(chip_id, msg, refused)
            return
        answer = header or reply_to_in(msg.data, prefixes)
        if deliveries(msg) > self._settings.max_deliver:
            await self._reject(chip_id, msg, f"gave up after {self._settings.max_deliver} "
                                              "deliveries", answer)
            return
        if not is_uuid(chip_id):  # not a chip: no history, no actor, no read-model row
            await self._reject(chip_id, msg, f"invalid command: chip_id {chip_id[:80]!r} is "
                               "not a UUID - at `chip_id` (the subject's last token)", answer)
            return
        try:
            command = decode_command(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            await self._reject(chip_id, msg, f"invalid command: {err}", answer)
            return
        if command.reply_to is not None and (refused := reply_refusal(command.reply_to,
                                                                      prefixes)):
            await self._refuse_reply(chip_id, msg, refused)
            return
        actor = await self._actor(chip_id)
        reply = await actor.handle(command, self._clock.now())
        if target := command.reply_to or header:  # the header alone will do (nats tools)
            await self._nc.publish(target, encode_reply(reply))
        await msg.ack()
        (COMMANDS_OK if reply.ok else COMMANDS_REFUSED).inc()

    async def _actor(self, chip_id: str) -> ChipActor:
        self._last_used[chip_id] = time.monotonic()
        actor = self._actors.get(chip_id)
        if actor is None:
            actor = ChipActor(chip_id, self._log, self._snapshots, self._settings.policy,
                              self._settings.snapshot_every)
            await actor.recover()
            self._actors[chip_id] = actor
        return actor

    async def _refuse_reply(self, chip_id: str, msg: Msg, refused: str) -> None:
        """Not carried out, and answered nowhere: the answer would land wherever the sender
        pointed it (another chip's audit log, the JetStream API)."""
        log.warning("chip %s: command dead-lettered: %s", chip_id, refused)
        await self._reject(chip_id, msg, refused, None)

    async def _reject(self, chip_id: str, msg: Msg, reason: str, reply_to: str | None) -> None:
        """Dead-letter the command and tell the sender why, on `reply_to` (already checked
        by `reply_refusal`, or None); the partition keeps going."""
        await send_to_dead_letters(self._js, "chip", chip_id, msg.data, reason, msg.subject)
        if reply_to:
            await self._nc.publish(reply_to, encode_reply(CommandReply(ok=False, error=reason)))
        await msg.term()
        DEAD_LETTERS.labels(kind="chip").inc()

    def _passivate_idle(self) -> None:
        """Forget chips idle for a while; their next command recovers them from the store."""
        horizon = time.monotonic() - self._settings.idle_passivate
        for chip_id in [c for c, used in self._last_used.items() if used < horizon]:
            actor = self._actors.pop(chip_id, None)
            del self._last_used[chip_id]
            if actor is not None:
                task = asyncio.create_task(actor.snapshot())
                task.add_done_callback(lambda t: t.exception())

    async def _snapshot_all(self) -> None:
        for actor in self._actors.values():
            try:
                await actor.snapshot()
            except Exception:
                log.warning("snapshot of chip %s failed", actor.chip_id)
