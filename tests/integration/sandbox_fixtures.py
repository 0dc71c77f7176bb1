"""Shared pieces for the sandbox integration tests: a webhook receiver and a fake sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from julia_chips.sandbox.world import serve


class Receiver:
    """Our side of the webhooks: records each POST (headers, raw body) in arrival order."""

    def __init__(self) -> None:
        self.url = ""
        self.queue: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def handle(self, request: web.Request) -> web.Response:
        await self.queue.put((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    async def next(self, timeout: float = 3.0) -> tuple[dict[str, str], bytes]:
        return await asyncio.wait_for(self.queue.get(), timeout)


class SleepRecorder:
    """Stands in for asyncio.sleep so retry tests assert the delays without waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.add_routes([web.post("/hook", recv.handle)])
    runner, base = await serve(app)
    recv.url = base + "/hook"
    yield recv
    await runner.cleanup()
