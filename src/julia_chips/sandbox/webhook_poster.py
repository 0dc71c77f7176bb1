"""Fire-and-forget webhook delivery for the sandbox servers, like the real senders do.

Delivery is asynchronous (the API call that caused it has already answered), may be
delayed on purpose to mimic a doctor taking time to read, and is never retried: the real
Evolution retry queue lives in memory and is lost on restart, so receivers must cope. A
delayed body is written when it leaves, so it is stamped by the clock of that moment, as a
real sender's is (on the demo's accelerated clock a second's delay is most of an hour).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aiohttp

log = logging.getLogger(__name__)


class WebhookPoster:
    """Owns one client session and the in-flight deliveries, so close() leaves nothing behind."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def post(
        self, url: str, body: bytes | Callable[[], bytes], headers: Mapping[str, str], *,
        delay: float = 0.0,
    ) -> None:
        """Schedule one POST after `delay` real seconds; a callable body is written then."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, body, headers, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every scheduled delivery has been attempted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel pending deliveries and close the session."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
        if self._session is not None:
            await self._session.close()

    async def _deliver(
        self, url: str, body: bytes | Callable[[], bytes], headers: Mapping[str, str],
        delay: float,
    ) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if callable(body):
            body = body()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.post(
                url, data=body, headers={**headers, "Content-Type": "application/json"}
            ) as resp:
                if resp.status >= 300:
                    log.warning("webhook to %s answered %d", url, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook to %s failed: %s", url, type(exc).__name__)
