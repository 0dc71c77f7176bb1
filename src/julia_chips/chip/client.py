"""Send chip commands and wait for the actor's reply.

The command names the client's own `reply_to` (see `reply_inbox`); `js.publish` tells us
it is stored before we wait, so a timeout never means the command was lost. A chip id that
is not a UUID is refused here, before anything is stored (the partition would dead-letter
it).
"""

from __future__ import annotations

from collections.abc import Awaitable

import msgspec
from nats.aio.client import Client as NATS

from julia_chips.contract.chip_commands import AnyChipCommand, CommandReply
from julia_chips.contract.codec import ENCODER, decode_reply
from julia_chips.contract.subjects import JuliaHeader, chip_command, is_uuid
from julia_chips.jetstream.reply_inbox import ReplyInbox


class ChipIdInvalid(ValueError):
    """A chip id that is not a UUID in its canonical form; the message names `chip_id`."""

    def __init__(self, chip_id: str) -> None:
        super().__init__(f"chip_id must be a UUID (lowercase, with hyphens), got {chip_id[:80]!r}")


def _checked(chip_id: str) -> str:
    if not is_uuid(chip_id):
        raise ChipIdInvalid(chip_id)
    return chip_id


class ChipClient:
    def __init__(self, nc: NATS) -> None:
        self._js = nc.jetstream()
        self._inbox: ReplyInbox[CommandReply] = ReplyInbox(nc, decode_reply)

    async def send(self, chip_id: str, command: AnyChipCommand,
                   timeout: float = 10.0) -> CommandReply:
        """Store `command` for `chip_id` and return the actor's reply.

        :param timeout: seconds to wait for the reply after the command is stored.
        :raises TimeoutError: no reply in time (the command stays stored and will be handled).
        :raises ChipIdInvalid: `chip_id` is not a UUID; nothing is sent.
        """
        subject = chip_command(_checked(chip_id))

        def store(reply_to: str) -> Awaitable[object]:
            body = ENCODER.encode(msgspec.structs.replace(command, reply_to=reply_to))
            return self._js.publish(subject, body)

        return await self._inbox.request(store, timeout)

    async def send_raw(self, chip_id: str, body: bytes, timeout: float = 10.0) -> CommandReply:
        """Send bytes as they are (bad-input tests, scripts); the reply subject goes in a
        header, so even a body that is not JSON is answered. :raises ChipIdInvalid:"""
        subject = chip_command(_checked(chip_id))

        def store(reply_to: str) -> Awaitable[object]:
            return self._js.publish(subject, body,
                                    headers={JuliaHeader.REPLY_TO: reply_to})

        return await self._inbox.request(store, timeout)

    async def close(self) -> None:
        await self._inbox.close()
