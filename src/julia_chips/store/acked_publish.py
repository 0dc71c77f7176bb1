"""JetStream publish-with-ack on the hot path, without nats-py's per-call request machinery.

`js.publish` sets up a request, a `wait_for` and a JSON parse per message; chip events are
appended once per command, so this publisher shares one inbox subscription, matches acks by
token and decodes them with msgspec. Errors are nats-py's typed `APIError`s all the same.
"""

from __future__ import annotations

import asyncio
import itertools

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError, NoStreamResponseError

ACK_TIMEOUT = 5.0  # seconds for the server's ack before the append counts as failed


class PubAck(msgspec.Struct, frozen=True):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, object] | None = None


_DECODER = msgspec.json.Decoder(PubAck)


class AckedPublisher:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._sub: Subscription | None = None
        self._subscribing = asyncio.Lock()

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is None or future.done():
            return
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NoStreamResponseError())
            return
        future.set_result(_DECODER.decode(msg.data))

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str], *,
                      timeout: float = ACK_TIMEOUT) -> PubAck:
        """Store one message; :raises APIError: as nats-py would (e.g. err_code 10071).

        :param timeout: seconds for the server's ack; then TimeoutError.
        """
        if self._sub is None:
            async with self._subscribing:  # concurrent first publishes share one inbox
                if self._sub is None:
                    self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_ack)
        inbox = f"{self._prefix}.{next(self._tokens)}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PubAck] = loop.create_future()
        self._waiting[inbox] = future
        # A plain timer: `asyncio.timeout` costs a tenth of a worker's CPU on this path.
        timer = loop.call_later(timeout, _expire, future, timeout)
        try:
            await self._nc.publish(subject, payload, reply=inbox, headers=headers)
            ack = await future
        finally:
            timer.cancel()
            self._waiting.pop(inbox, None)
        if ack.error is not None:
            raise APIError.from_error(ack.error)
        return ack


def _expire(future: asyncio.Future[PubAck], timeout: float) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"no JetStream ack within {timeout}s"))
