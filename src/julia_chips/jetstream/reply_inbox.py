"""Requests whose answer comes from an actor, not from JetStream's publish ack.

`chip.cmd.>` and `route.cmd.>` are captured by work-queue streams, so a plain NATS request
there is answered by the publish ack. A client instead names a reply subject of its own in
the command, stores the command, and waits on that subject. One wildcard subscription
serves every request of a client; answers are matched by subject.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

R = TypeVar("R")


class ReplyInbox(Generic[R]):
    def __init__(self, nc: NATS, decode: Callable[[bytes], R]) -> None:
        self._nc = nc
        self._decode = decode
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[R]] = {}
        self._sub: Subscription | None = None

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(self._decode(msg.data))

    async def request(self, store: Callable[[str], Awaitable[object]], timeout: float) -> R:
        """`store(reply_to)` stores the command naming `reply_to`; then wait for the answer.

        :param timeout: seconds to wait for the answer once the command is stored.
        :raises TimeoutError: no answer in time (the stored command will still be handled).
        """
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)
        reply_to = f"{self._prefix}.{next(self._tokens)}"
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting[reply_to] = future
        try:
            await store(reply_to)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(reply_to, None)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
