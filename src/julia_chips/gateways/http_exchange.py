"""What the HTTP gateway clients (Evolution, Salvy, Cloud API) share: one request/answer
exchange, strict decoding of answers and bodies, and path segments from outside names.

Each client keeps its own error mapping: which failures are safe to retry, and whether the
request may have left us, differ per API (a repeated send may message a doctor twice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from julia_chips.gateways.backoff import retry_after_seconds

W = TypeVar("W")

# What a strict msgspec decode raises for bytes that are not the expected shape.
UNREADABLE = (msgspec.ValidationError, msgspec.DecodeError)

Params = dict[str, str] | list[tuple[str, str]] | None

MAX_ANSWER_BYTES = 1024 * 1024
"""The most of an outside answer we read (after decompression): Evolution's, Salvy's and
the Graph API's biggest (a page of accounts, a QR code in base64) are tens of KiB. A gateway
that sends more is broken or hostile, and reading on would only fill our memory."""


class AnswerTooLarge(Exception):
    """An answer above MAX_ANSWER_BYTES; each client raises it again as its own error kind."""

    def __init__(self, url: str) -> None:
        path = url.split("?", 1)[0]
        super().__init__(f"answer from {path} is bigger than the {MAX_ANSWER_BYTES} bytes "
                         "we read (MAX_ANSWER_BYTES)")


class Answer(NamedTuple):
    status: int
    body: bytes
    retry_after: float | None  # seconds, from `Retry-After` when the server sent one


async def exchange(session: aiohttp.ClientSession, method: str, url: str, *,
                   headers: dict[str, str], timeout: aiohttp.ClientTimeout,
                   json: bytes | None = None, params: Params = None) -> Answer:
    """One HTTP exchange, whatever the status; aiohttp's errors and TimeoutError pass through.

    :param json: an encoded JSON body, sent with `Content-Type: application/json`.
    :raises AnswerTooLarge: the answer (any status) is above MAX_ANSWER_BYTES.
    """
    if json is not None:
        headers = {**headers, "Content-Type": "application/json"}
    async with session.request(method, url, data=json, params=params, headers=headers,
                               timeout=timeout) as resp:
        body = await _capped(resp, url)
        return Answer(resp.status, body, retry_after_seconds(resp.headers.get("Retry-After")))


async def _capped(resp: aiohttp.ClientResponse, url: str) -> bytes:
    """The body, read in chunks and given up past the cap (a `Content-Length` above it is
    refused before reading): never the whole of a huge answer in memory."""
    if resp.content_length is not None and resp.content_length > MAX_ANSWER_BYTES:
        raise AnswerTooLarge(url)
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(url)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_strict(kind: type[W], body: bytes, refuse: Callable[[str], Exception]) -> W:
    """`body` as `kind`; otherwise the exception `refuse` builds from the reason, which names
    the offending field's path (`Expected int, got str - at $.data.id`)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except UNREADABLE as exc:
        raise refuse(str(exc)) from exc


def segment(name: str) -> str:
    """An outside name (instance, account id) as one URL path segment, `/` included."""
    return quote(name, safe="")
