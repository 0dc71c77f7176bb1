"""The activator's waits on gateway observations in GATEWAY_OBS: an SMS code, an open socket.

Each wait starts after a stream sequence recorded in the saga before the request that
causes the observation, so an SMS that arrived while the activator was down is still found,
and a stale code from an earlier request is never taken. Polling `next_by_subject` keeps no
consumer state to leak when a saga is cancelled. Deadlines are read from the injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.clock import Clock
from julia_chips.contract.observations import ConnectionUpdate, SmsReceived
from julia_chips.contract.subjects import Stream, gateway_observation, sms_observation
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.ingest.observation_log import ObservationUnreadable, decode_observation

POLL = 0.1  # seconds between looks at the stream

StateProbe = Callable[[], Awaitable[bool]]  # asks the gateway directly whether it is open


async def last_seq(js: JetStreamContext, subject: str) -> int:
    """The stream sequence of the subject's last observation; 0 when there is none. Read
    from the leader: a follower behind it would give an older cursor, and the wait could
    take a code that came before the request."""
    try:
        msg = await js.get_msg(Stream.GATEWAY_OBS, subject=subject)
    except NotFoundError:
        return 0
    return int(msg.seq or 0)


async def sms_cursor(js: JetStreamContext, account_id: str) -> int:
    return await last_seq(js, sms_observation(account_id))


async def connection_cursor(js: JetStreamContext, instance: str) -> int:
    return await last_seq(js, gateway_observation(instance))


async def wait_for_code(js: JetStreamContext, clock: Clock, account_id: str, after_seq: int,
                        deadline: datetime) -> tuple[SmsReceived, int] | None:
    """The first SMS carrying a WhatsApp code after `after_seq`, and its sequence; None at
    the deadline. SMS without a code (spam, other services) are skipped: Salvy forwards
    everything."""
    subject, cursor = sms_observation(account_id), after_seq + 1
    while clock.now() < deadline:
        found, cursor = await _next(js, subject, cursor)
        if isinstance(found, SmsReceived) and found.code:
            return found, cursor - 1
        if found is None:
            await asyncio.sleep(POLL)
    return None


async def code_at(js: JetStreamContext, account_id: str, seq: int) -> str | None:
    """The code of the SMS to `account_id` stored at `seq`; None when it is gone (older
    than GATEWAY_OBS's max age, or deleted) or is no such SMS."""
    try:
        msg = await js.get_msg(Stream.GATEWAY_OBS, seq=seq, direct=True)
    except NotFoundError:
        return None
    if msg.subject != sms_observation(account_id):
        return None
    try:
        found = decode_observation(msg.data or b"")
    except ObservationUnreadable:
        return None
    return found.code if isinstance(found, SmsReceived) else None


def open_probe(evolution: EvolutionClient, instance: str) -> Callable[[], Awaitable[bool]]:
    """`wait_for_open`'s fallback: the gateway's own word that `instance` is open."""

    async def probe() -> bool:
        try:
            return await evolution.connection_state(instance) == "open"
        except Exception:  # the webhook may still come; the probe is only a fallback
            return False

    return probe


async def wait_for_open(js: JetStreamContext, clock: Clock, instance: str, after_seq: int,
                        deadline: datetime, probe: StateProbe, probe_every: float = 2.0) -> bool:
    """True once the instance reports `open`, by webhook or, since a gateway's webhooks are
    fire-and-forget, by asking it every `probe_every` seconds; False at the deadline."""
    subject, cursor = gateway_observation(instance), after_seq + 1
    loop = asyncio.get_running_loop()
    next_probe = loop.time() + probe_every
    while clock.now() < deadline:
        found, cursor = await _next(js, subject, cursor)
        if isinstance(found, ConnectionUpdate) and found.state == "open":
            return True
        if found is None:
            if loop.time() >= next_probe:
                if await probe():
                    return True
                next_probe = loop.time() + probe_every
            await asyncio.sleep(POLL)
    return False


async def _next(js: JetStreamContext, subject: str, cursor: int
                ) -> tuple[ConnectionUpdate | SmsReceived | object | None, int]:
    """The next observation at or after `cursor` (None when there is none yet)."""
    try:
        msg = await js.get_msg(Stream.GATEWAY_OBS, seq=cursor, subject=subject, next=True,
                               direct=True)
    except NotFoundError:
        return None, cursor
    assert msg.seq is not None
    try:
        return decode_observation(msg.data or b""), msg.seq + 1
    except ObservationUnreadable:
        return object(), msg.seq + 1  # another producer's kind: skip it
