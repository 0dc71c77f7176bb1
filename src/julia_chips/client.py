"""Send chip commands and wait for the actor's reply.

A plain NATS request on `chip.cmd.>` would be answered by JetStream's publish ack, not the
actor, so the client names its own `reply_to` inbox in the body, `js.publish`es the command
(so it knows the command is stored) and waits on the inbox.
"""

from __future__ import annotations

import asyncio
import itertools

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from julia_chips.events.codec import ENCODER, decode_reply
from julia_chips.events.commands import AnyChipCommand, CommandReply
from julia_chips.subjects import JuliaHeader, chip_command


class ChipClient:
    """One inbox subscription shared by every request; replies are matched by token."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[CommandReply]] = {}
        self._sub: Subscription | None = None

    async def _ensure_inbox(self) -> None:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(decode_reply(msg.data))

    async def send(self, chip_id: str, command: AnyChipCommand,
                   timeout: float = 10.0) -> CommandReply:
        """Store `command` for `chip_id` and return the actor's reply.

        :param timeout: seconds to wait for the reply after the command is stored.
        :raises TimeoutError: no reply in time (the command stays stored and will be handled).
        """
        await self._ensure_inbox()
        reply_to = f"{self._prefix}.{next(self._tokens)}"
        future: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        self._waiting[reply_to] = future
        try:
            body = ENCODER.encode(msgspec.structs.replace(command, reply_to=reply_to))
            await self._js.publish(chip_command(chip_id), body)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(reply_to, None)

    async def send_raw(self, chip_id: str, body: bytes, timeout: float = 10.0) -> CommandReply:
        """Send bytes as they are (bad-input tests, scripts); the reply subject goes in a
        header, so even a body that is not JSON is answered."""
        await self._ensure_inbox()
        reply_to = f"{self._prefix}.{next(self._tokens)}"
        future: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        self._waiting[reply_to] = future
        try:
            await self._js.publish(chip_command(chip_id), body,
                                   headers={JuliaHeader.REPLY_TO: reply_to})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(reply_to, None)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
