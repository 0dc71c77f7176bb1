"""One mailbox per key: a key's jobs run one at a time, in arrival order; keys run concurrently."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailboxes(Generic[T]):
    def __init__(self, handle: Callable[[str, T], Awaitable[None]]) -> None:
        self._handle = handle
        self._queues: dict[str, deque[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, key: str, item: T) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(item)  # the running drain will get to it, in order
            return
        self._queues[key] = deque([item])
        task = asyncio.create_task(self._drain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await self._handle(key, queue[0])
                queue.popleft()
        finally:
            del self._queues[key]

    @property
    def busy(self) -> bool:
        return bool(self._queues)

    async def join(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.join()
