"""Rewind a durable consumer to its ack floor (`$JS.API.CONSUMER.RESET`, nats-server ≥ 2.14).

After a crash JetStream hands a consumer's new messages out before it redelivers the ones
left unacked. A reader that must see its stream in order resets first: everything after the
ack floor comes again, in stream order, and nothing before it does. nats-py has no call for
this API yet.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import APIError

API_TIMEOUT = 5.0  # seconds for the server's answer


class _ResetAnswer(msgspec.Struct):
    reset_seq: int = 0
    error: dict[str, object] | None = None


_DECODER = msgspec.json.Decoder(_ResetAnswer)


async def reset_to_ack_floor(nc: NATS, stream: str, durable: str) -> int:
    """:returns: the stream sequence the next delivery starts at.

    :raises APIError: the consumer or stream is missing, or the server is older than 2.14.
    """
    answer = await nc.request(f"$JS.API.CONSUMER.RESET.{stream}.{durable}", b"",
                              timeout=API_TIMEOUT)
    decoded = _DECODER.decode(answer.data)
    if decoded.error is not None:
        raise APIError.from_error(decoded.error)
    return decoded.reset_seq
