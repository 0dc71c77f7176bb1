"""Purge one subject filter of a stream and learn how many messages went.

nats-py's `purge_stream` answers only `success`; the server's answer also says `purged`, and
an operator who purges must be told how many letters that was.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import APIError

API_TIMEOUT = 5.0  # seconds for the server's answer


class _PurgeAnswer(msgspec.Struct):
    purged: int = 0
    error: dict[str, object] | None = None


_DECODER = msgspec.json.Decoder(_PurgeAnswer)


async def purge_subject(nc: NATS, stream: str, subject: str) -> int:
    """Remove every message of `stream` on `subject` (wildcards allowed); how many went.

    :raises APIError: the stream is missing, or the filter is not one of its subjects.
    """
    answer = await nc.request(f"$JS.API.STREAM.PURGE.{stream}",
                              msgspec.json.encode({"filter": subject}), timeout=API_TIMEOUT)
    decoded = _DECODER.decode(answer.data)
    if decoded.error is not None:
        raise APIError.from_error(decoded.error)
    return decoded.purged
