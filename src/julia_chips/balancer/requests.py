"""The leader's consumer of `route.cmd.>`: decode, decide, then answer once it is done.

A request is acked only after its events are stored and its answer sent, so a leader killed
at any point leaves it to be redelivered to the next one. A redelivered send is recognised
by its command id in the rebuilt ledger: answered again from there, never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from julia_chips.balancer.leader import Job, Leader
from julia_chips.balancer.metrics import REQUEST_SECONDS, REQUESTS
from julia_chips.balancer.model.decide import Event, RouteRefused, decide
from julia_chips.balancer.model.state import evolve
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.route import RefusalReason, ReplyStatus
from julia_chips.contract.subjects import JuliaHeader, Stream, route_verb
from julia_chips.jetstream.consumer_reset import reset_to_ack_floor
from julia_chips.jetstream.dead_letters import reply_to_in, send_to_dead_letters
from julia_chips.jetstream.pull_feed import PullFeed, deliveries
from julia_chips.jetstream.reply_subjects import reply_refusal

log = logging.getLogger(__name__)
WINDOW = 256  # requests asked of the server ahead of handling
TEND = 0.5  # seconds between checks of the lease and the pull's liveness
MAX_IN_FLIGHT = 4096
CONSUMER = "balancer"
_OK = frozenset({ReplyStatus.DISPATCHED, ReplyStatus.QUEUED})  # any other status: not sent
_STATUS_OF: dict[type[rt.RouteCommand], ReplyStatus] = {
    rt.OptOut: ReplyStatus.OPTED_OUT, rt.OptIn: ReplyStatus.OPTED_IN,
    rt.ForgetDoctor: ReplyStatus.ERASED}


class RequestConsumer:
    def __init__(self, leader: Leader) -> None:
        self._leader = leader
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def run(self) -> None:
        """Handle requests as they arrive until cancelled or the leader is deposed."""
        leader = self._leader
        await self._ensure_consumer()
        feed = PullFeed(leader.nc, Stream.ROUTE_CMDS, CONSUMER, self._receive, window=WINDOW)
        await feed.start()
        try:
            while not leader.deposed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(leader.deposed.wait(), TEND)
                await feed.keep_alive()
        finally:
            with contextlib.suppress(NatsError):  # NATS gone: its requests went with it
                await feed.stop()

    async def _ensure_consumer(self) -> None:
        leader = self._leader
        try:
            await leader.js.consumer_info(Stream.ROUTE_CMDS, CONSUMER)
        except NotFoundError:
            await leader.js.add_consumer(Stream.ROUTE_CMDS, ConsumerConfig(
                durable_name=CONSUMER, filter_subject="route.cmd.>",
                ack_policy=AckPolicy.EXPLICIT, ack_wait=leader.settings.ack_wait,
                deliver_policy=DeliverPolicy.ALL, max_ack_pending=MAX_IN_FLIGHT))
        # A deposed leader's unanswered requests come again first and in order, so a
        # doctor's messages keep their order across a failover (acked ones left the queue).
        await reset_to_ack_floor(leader.nc, Stream.ROUTE_CMDS, CONSUMER)

    async def _receive(self, m: Msg) -> None:
        if self._leader.deposed.is_set():  # still arriving while the feed stops: not ours
            with contextlib.suppress(NatsError):
                await m.nak()  # to the next leader now, not after `ack_wait`
            return
        await self._in_flight.acquire()  # back-pressure: the feed waits while we are full
        try:
            await self._handle(m)
        except Exception:
            self._in_flight.release()
            log.exception("route request on %s failed: stepping down", m.subject)
            self._leader.deposed.set()  # the next leader rebuilds and gets it again

    async def _handle(self, m: Msg) -> None:
        read = await self._read(m)
        if read is None:
            return
        command, reply_to = read
        leader = self._leader
        if isinstance(command, rt.SendRequest):
            if self._still_sending(command):
                self._in_flight.release()  # the first delivery is still on it and will ack
                return
            known = self._known(command)
            if known is not None:
                await self._finish(m, reply_to, known)
                return
        try:
            events = decide(leader.state, command, leader.clock.now(), leader.settings.protection)
        except RouteRefused as refused:
            await self._finish(m, reply_to, rt.RouteReply(ok=False, error=str(refused),
                                                          reason=refused.reason))
            return
        for event in events:
            evolve(leader.state, event)  # now, before any await: the next decision sees it
        # a doctor's events stay in order in its mailbox; an inbound names its doctors in them
        mailbox = next((e.doctor_id for e in events if isinstance(e, rt.RouteEvent)),
                       command.doctor_id or "inbound")
        leader.post(mailbox, self._carry_out(m, reply_to, command, events))

    async def _read(self, m: Msg) -> tuple[rt.AnyRouteCommand, str | None] | None:
        """The request and where to answer it; None once it is refused (dead-lettered)."""
        leader = self._leader
        prefixes = leader.settings.reply_prefixes
        header_reply = (m.headers or {}).get(JuliaHeader.REPLY_TO)
        if header_reply and (refused := reply_refusal(header_reply, prefixes,
                                                      JuliaHeader.REPLY_TO)):
            await self._reject(m, None, refused)
            return None
        answer = header_reply or reply_to_in(m.data, prefixes)
        if deliveries(m) > leader.settings.max_deliver:
            await self._reject(m, answer, f"gave up after {leader.settings.max_deliver} "
                                          "deliveries")
            return None
        try:
            command = rt.decode_route_command(route_verb(m.subject), m.data)
        except rt.BadRouteCommand as bad:
            await self._reject(m, answer, str(bad))
            return None
        if command.reply_to and (refused := reply_refusal(command.reply_to, prefixes)):
            await self._reject(m, None, refused)
            return None
        return command, command.reply_to or header_reply

    def _still_sending(self, request: rt.SendRequest) -> bool:
        """A redelivery of a send this leader is dispatching right now."""
        leader = self._leader
        return (request.command_id in leader.state.attempts
                and request.command_id in leader.in_flight)

    def _known(self, request: rt.SendRequest) -> rt.RouteReply | None:
        """The answer a send already handled gets again (from the ledger or the backlog);
        None: a new request."""
        state = self._leader.state
        attempt = state.attempts.get(request.command_id)
        if attempt is not None:
            status = attempt.outcome or ReplyStatus.UNKNOWN
            return rt.RouteReply(ok=status in _OK, chip_id=attempt.chip_id, status=status)
        if request.command_id in state.backlog:
            return rt.RouteReply(ok=True, status=ReplyStatus.QUEUED,
                                 reason=state.backlog[request.command_id].reason)
        return None

    def _carry_out(self, m: Msg, reply_to: str | None, command: rt.AnyRouteCommand,
                   events: list[Event]) -> Job:
        leader = self._leader

        async def carry_out() -> None:
            for event in events:
                if isinstance(event, rt.RouteEvent):
                    await leader.routes.append(event)
            await self._finish(m, reply_to, await self._answer(command, events))
        return carry_out

    async def _answer(self, command: rt.AnyRouteCommand, events: list[Event]) -> rt.RouteReply:
        attempt = next((e for e in events if isinstance(e, msg.SendAttempted)), None)
        if isinstance(command, rt.SendRequest) and attempt is not None:
            status = await self._leader.send(attempt, command.doctor_phone, command.text)
            error = None if status is ReplyStatus.DISPATCHED else f"send {status}: not re-sent"
            return rt.RouteReply(ok=status in _OK, chip_id=attempt.chip_id, status=status,
                                 error=error)
        queued = next((e for e in events if isinstance(e, rt.RequestQueued)), None)
        if queued is not None:
            return rt.RouteReply(ok=True, status=ReplyStatus.QUEUED, reason=queued.reason)
        status = _STATUS_OF.get(type(command), ReplyStatus.NOTED)
        if any(isinstance(e, rt.DoctorOptedOut) for e in events):
            status = ReplyStatus.OPTED_OUT
        return rt.RouteReply(ok=True, status=status)

    async def _finish(self, m: Msg, reply_to: str | None, reply: rt.RouteReply) -> None:
        try:
            if reply_to:
                await self._leader.nc.publish(reply_to, ENCODER.encode(reply))
            await m.ack()
            _answered(reply.status or reply.reason or "refused").inc()
            REQUEST_SECONDS.observe(max(0.0, time.time() - m.metadata.timestamp.timestamp()))
        finally:
            self._in_flight.release()

    async def _reject(self, m: Msg, reply_to: str | None, reason: str) -> None:
        """Bad input: tell the sender why on `reply_to` (checked by `reply_refusal`; None when
        it was refused: not answered at all), keep the bytes in the dead letters, store
        nothing."""
        log.info("route request refused: %s", reason[:200])
        await send_to_dead_letters(self._leader.js, "route", route_verb(m.subject),
                                   m.data, reason, m.subject)
        try:
            if reply_to:
                reply = rt.RouteReply(ok=False, error=reason, reason=RefusalReason.INVALID)
                await self._leader.nc.publish(reply_to, ENCODER.encode(reply))
            await m.term()
        finally:
            self._in_flight.release()


@functools.cache
def _answered(status: str) -> Counter:
    """The counter of one answer status (`labels` takes a lock and builds a key each call)."""
    return REQUESTS.labels(status=status)
