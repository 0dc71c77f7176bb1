"""Bounded retries with exponential back-off, for the calls that are safe to repeat.

Only callers decide what is safe: a repeated read is harmless, a repeated send may message a
doctor twice, and a repeated purchase may buy two numbers. So this module never guesses; it
retries exactly the exception types it is handed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger(__name__)


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """How hard to retry: `attempts` counts the first try; delays are in seconds."""

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 30.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0-based): doubles, capped."""
        return float(min(self.max_delay, self.base_delay * 2**retry))


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    policy: Backoff,
    retry_on: tuple[type[Exception], ...],
    what: str,
    sleep: Sleep = asyncio.sleep,
    server_delay: Callable[[Exception], float | None] = lambda _exc: None,
) -> T:
    """Run `call`, retrying `retry_on` failures up to `policy.attempts` times in all.

    :param what: names the operation in logs; must not contain a phone number or a secret.
    :param server_delay: a delay the server asked for (Retry-After), honoured but capped by
        `policy.max_delay` so a hostile or buggy header cannot park us for hours.
    """
    for retry in range(policy.attempts - 1):
        try:
            return await call()
        except retry_on as exc:
            asked = server_delay(exc)
            wait = min(policy.max_delay, asked) if asked is not None else policy.delay(retry)
            name = type(exc).__name__
            log.warning("%s failed (%s); retry %d in %.2fs", what, name, retry + 1, wait)
            await sleep(wait)
    return await call()


def retry_after_seconds(header: str | None) -> float | None:
    """A `Retry-After` header in seconds; None when absent or an HTTP date (we then back off)."""
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None
