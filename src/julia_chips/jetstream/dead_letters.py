"""Commands that could not be decoded or exhausted their deliveries go to `dlq.>` with why."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import JuliaHeader, dead_letter
from julia_chips.jetstream.reply_subjects import reply_refusal


async def send_to_dead_letters(
    js: JetStreamContext, kind: str, key: str, data: bytes, reason: str, subject: str
) -> None:
    """Store the original bytes untouched, with the reason and where they came from."""
    headers: dict[str, str] = {
        JuliaHeader.DLQ_REASON: reason[:1000], JuliaHeader.DLQ_SUBJECT: subject}
    await js.publish(dead_letter(kind, key), data, headers=headers)


def reply_to_in(data: bytes, prefixes: Iterable[str]) -> str | None:
    """Best effort: the `reply_to` of a body that failed to decode as a command, when it is
    a subject we may answer on (`reply_subjects`); None otherwise."""
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    reply_to = obj.get("reply_to") if isinstance(obj, dict) else None
    if isinstance(reply_to, str) and reply_refusal(reply_to, prefixes) is None:
        return reply_to
    return None
