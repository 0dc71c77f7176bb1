"""Every outside answer is read with a cap (`MAX_ANSWER_BYTES`): a real aiohttp server that
answers far more, streamed, declared up front or gzipped small, makes each gateway client
raise its own error naming the cap after reading at most the cap, never the whole body."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from julia_chips.gateways.backoff import Backoff
from julia_chips.gateways.cloud_api.client import CloudApiClient, CloudApiError
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.errors import GatewayError
from julia_chips.gateways.http_exchange import MAX_ANSWER_BYTES
from julia_chips.gateways.salvy.client import SalvyClient
from julia_chips.gateways.salvy.errors import SalvyError

HUGE = 64 * MAX_ANSWER_BYTES  # what the server would send, were it read to the end
CHUNK = b"[" + b"0," * 32_767 + b"0]"  # 64 KiB of valid-looking JSON, again and again


class HugeAnswers:
    """The gateways' paths all answer 200 with far too much; `sent` counts what went out."""

    def __init__(self) -> None:
        self.mode = "streamed"
        self.sent = 0

    async def answer(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "gzip":  # ~2 KiB on the wire, 2 MiB once aiohttp inflates it
            body = gzip.compress(b" " * (2 * MAX_ANSWER_BYTES))
            return web.Response(body=body, headers={"Content-Encoding": "gzip",
                                                    "Content-Type": "application/json"})
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.mode == "declared":
            resp.content_length = HUGE
        await resp.prepare(request)
        try:
            while self.sent < HUGE:
                await resp.write(CHUNK)
                self.sent += len(CHUNK)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client gave up, as it should
        return resp


@pytest.fixture
async def huge() -> AsyncIterator[tuple[HugeAnswers, str]]:
    answers = HugeAnswers()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answers.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield answers, f"http://127.0.0.1:{port}"
    await runner.cleanup()


NO_RETRY = Backoff(attempts=1)
Call = Callable[[aiohttp.ClientSession, str], Awaitable[Any]]
CLIENTS: dict[str, tuple[Call, type[Exception]]] = {
    "evolution": (lambda s, url: EvolutionClient(s, url, "key", backoff=NO_RETRY)
                  .connection_state("chip-1"), GatewayError),
    "salvy": (lambda s, url: SalvyClient(s, url, "token", backoff=NO_RETRY).get("acc-1"),
              SalvyError),
    "cloud api": (lambda s, url: CloudApiClient(s, url, "token", "waba").number("pn-1"),
                  CloudApiError),
}


@pytest.mark.parametrize("mode", ["streamed", "declared", "gzip"])
@pytest.mark.parametrize("gateway", sorted(CLIENTS))
async def test_an_answer_above_the_cap_is_the_gateways_error_naming_it(
        huge: tuple[HugeAnswers, str], gateway: str, mode: str) -> None:
    answers, url = huge
    answers.mode = mode
    call, error = CLIENTS[gateway]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(error, match=f"bigger than the {MAX_ANSWER_BYTES} bytes"):
            await call(session, url)
    assert answers.sent < HUGE / 2  # the client stopped reading; the rest never came
