"""Ask the balancer to send, opt a doctor out or in, and wait for its answer.

Like `ChipClient` (see `reply_inbox`); the reply subject also travels in the
`Julia-Reply-To` header, so even a malformed body is answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

import msgspec
from nats.aio.client import Client as NATS

from julia_chips.contract.codec import ENCODER
from julia_chips.contract.route import (
    ForgetDoctor,
    OptIn,
    OptOut,
    RouteCommand,
    RouteReply,
    SendRequest,
)
from julia_chips.contract.subjects import JuliaHeader, route_command
from julia_chips.jetstream.reply_inbox import ReplyInbox

_REPLY = msgspec.json.Decoder(RouteReply)
_VERB = {SendRequest: "send", OptOut: "optout", OptIn: "optin", ForgetDoctor: "forget"}


class RouteClient:
    def __init__(self, nc: NATS) -> None:
        self._js = nc.jetstream()
        self._inbox: ReplyInbox[RouteReply] = ReplyInbox(nc, _REPLY.decode)

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

    async def forget(self, doctor_id: str, command_id: str, timeout: float = 10.0
                     ) -> RouteReply:
        """The doctor is being erased: the balancer drops their backlog (`ForgetDoctor`)."""
        return await self.request(ForgetDoctor(command_id=command_id, doctor_id=doctor_id),
                                  timeout)

    async def request(self, command: RouteCommand, timeout: float = 10.0) -> RouteReply:
        """:raises TimeoutError: no answer in time (the request stays stored and is handled)."""
        verb = _VERB.get(type(command), "inbound")
        return await self._publish(verb, command, timeout)

    async def send_raw(self, verb: str, body: bytes, timeout: float = 10.0) -> RouteReply:
        """Bytes as they are, for bad-input tests; the reply subject travels in a header."""
        return await self._publish(verb, body, timeout)

    async def _publish(self, verb: str, command: RouteCommand | bytes,
                       timeout: float) -> RouteReply:
        def store(reply_to: str) -> Awaitable[object]:
            body = command if isinstance(command, bytes) else ENCODER.encode(
                msgspec.structs.replace(command, reply_to=reply_to))
            return self._js.publish(route_command(verb), body,
                                    headers={JuliaHeader.REPLY_TO: reply_to})

        return await self._inbox.request(store, timeout)

    async def close(self) -> None:
        await self._inbox.close()
