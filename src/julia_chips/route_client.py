"""Ask the balancer to send, opt a doctor out or in, and wait for its answer.

Like `ChipClient`: `route.cmd.>` is a JetStream work queue, so a plain request would be
answered by the publish ack. The client names its own inbox in the body (and in the
`Julia-Reply-To` header, so even a malformed body is answered), stores the request with
`js.publish` and waits on the inbox.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from julia_chips.events.codec import ENCODER
from julia_chips.events.route import OptIn, OptOut, RouteCommand, RouteReply, SendRequest
from julia_chips.subjects import JuliaHeader, route_command

_REPLY = msgspec.json.Decoder(RouteReply)
_VERB = {SendRequest: "send", OptOut: "optout", OptIn: "optin"}


class RouteClient:
    """One inbox subscription shared by every request; replies are matched by subject."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[RouteReply]] = {}
        self._sub: Subscription | None = None

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(_REPLY.decode(msg.data))

    async def send(self, doctor_id: str, doctor_phone: str, text: str, kind: str,
                   consented: bool = False, command_id: str | None = None,
                   timeout: float = 10.0) -> RouteReply:
        """Ask for `text` to reach the doctor; the reply says the chip and `dispatched` or
        `queued`, or why not. Reuse `command_id` to retry safely: it is never sent twice."""
        request = SendRequest(command_id=command_id or uuid.uuid4().hex, doctor_id=doctor_id,
                              doctor_phone=doctor_phone, text=text, kind=kind,  # type: ignore[arg-type]
                              consented=consented)
        return await self.request(request, timeout)

    async def opt_out(self, doctor_id: str, source: str, timeout: float = 10.0) -> RouteReply:
        return await self.request(OptOut(command_id=uuid.uuid4().hex, doctor_id=doctor_id,
                                         source=source), timeout)

    async def opt_in(self, doctor_id: str, source: str, timeout: float = 10.0) -> RouteReply:
        return await self.request(OptIn(command_id=uuid.uuid4().hex, doctor_id=doctor_id,
                                        source=source), timeout)

    async def request(self, command: RouteCommand, timeout: float = 10.0) -> RouteReply:
        """:raises TimeoutError: no answer in time (the request stays stored and is handled)."""
        verb = _VERB.get(type(command), "inbound")
        return await self._publish(verb, command, timeout)

    async def send_raw(self, verb: str, body: bytes, timeout: float = 10.0) -> RouteReply:
        """Bytes as they are, for bad-input tests; the reply subject travels in a header."""
        return await self._publish(verb, body, timeout)

    async def _publish(self, verb: str, command: RouteCommand | bytes,
                       timeout: float) -> RouteReply:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)
        reply_to = f"{self._prefix}.{next(self._tokens)}"
        future: asyncio.Future[RouteReply] = asyncio.get_running_loop().create_future()
        self._waiting[reply_to] = future
        try:
            body = command if isinstance(command, bytes) else ENCODER.encode(
                msgspec.structs.replace(command, reply_to=reply_to))
            await self._js.publish(route_command(verb), body,
                                   headers={JuliaHeader.REPLY_TO: reply_to})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(reply_to, None)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
