"""Who may call what over real HTTP: the read token reads, the operator token reads and
operates, and `run` will not serve a public address with no token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS

from julia_chips.app import start_http
from julia_chips.clock import SystemClock
from julia_chips.config import Config, ConfigError
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.http.auth import Access, require_token_off_loopback
from julia_chips.http.routes import READ_ROUTES, Route
from julia_chips.ingest.webhooks import (
    WEBHOOK_ACCESS,
    WEBHOOK_INGRESS,
    WebhookIngress,
    webhook_routes,
)

READER, OPERATOR = "read-token-1", "operator-token-2"


async def operate(request: web.Request) -> web.Response:
    """An operator endpoint: the interface's write endpoints will be declared like it."""
    return web.json_response({"ok": True})


PROBE = Route(path="/operator/probe", method="POST", handler=operate, access=Access.OPERATE,
              summary="an operator action", statuses=(200, 401, 403))


@asynccontextmanager
async def api(nc: NATS, database_url: str, **tokens: str) -> AsyncIterator[str]:
    await migrate_url(database_url)
    config = Config(nats_url="nats://unused:1", database_url=database_url, **tokens)
    runner, port = await start_http(create_app(config, nc=nc,
                                               read_routes=(*READ_ROUTES, PROBE)), 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def status(base: str, path: str, token: str | None, method: str = "GET") -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.request(
            method, base + path, headers=headers) as resp:
        return resp.status


async def test_the_operator_token_reads_and_operates_the_read_token_only_reads(
        nc: NATS, database_url: str) -> None:
    async with api(nc, database_url, api_token=READER, operator_token=OPERATOR) as base:
        for token in (READER, OPERATOR):
            assert await status(base, "/health/chips", token) == 200
        assert await status(base, "/health/chips", "wrong") == 401
        assert await status(base, "/operator/probe", OPERATOR, "POST") == 200
        assert await status(base, "/operator/probe", READER, "POST") == 403
        for token in (None, "wrong"):
            assert await status(base, "/operator/probe", token, "POST") == 401
        assert await status(base, "/health", None) == 200


async def test_with_no_operator_token_nobody_operates(nc: NATS, database_url: str) -> None:
    """Giving out the read token never gives out the write endpoints."""
    async with api(nc, database_url, api_token=READER) as base:
        assert await status(base, "/operator/probe", READER, "POST") == 403
        assert await status(base, "/health/chips", READER) == 200


async def test_webhooks_are_declared_open_and_nothing_else_is(nc: NATS, database_url: str
                                                                ) -> None:
    """A webhook carries its sender's signature, not our bearer token; a path under
    /webhooks/ that no route declares is not opened by its prefix."""
    await migrate_url(database_url)
    config = Config(nats_url="nats://unused:1", database_url=database_url, api_token=READER)
    app = create_app(config, nc=nc, routes=webhook_routes(), route_access=WEBHOOK_ACCESS)
    app[WEBHOOK_INGRESS] = WebhookIngress(nc.jetstream(), SystemClock(), evolution_secret="m",
                                          salvy_secret=None, cloud_api_secret="s",
                                          cloud_api_verify_token="v")
    runner, port = await start_http(app, 0)
    base = f"http://127.0.0.1:{port}"
    try:
        handshake = "/webhooks/cloud-api?hub.mode=subscribe&hub.verify_token=v&hub.challenge=7"
        assert await status(base, handshake, None) == 200
        assert await status(base, "/webhooks/cloud-api", None, "POST") == 401  # unsigned
        assert await status(base, "/webhooks/salvy", None, "POST") == 401  # no Svix headers
        assert await status(base, "/webhooks/elsewhere", None, "POST") == 401  # bearer
        assert await status(base, "/webhooks/elsewhere", READER, "POST") == 404
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("host", "token", "refused"), [
    ("0.0.0.0", None, True), ("::", None, True), ("api.example.com", None, True),
    ("10.0.0.5", None, True), ("0.0.0.0", READER, False), ("127.0.0.1", None, False),
    ("::1", None, False), ("localhost", None, False),
])
def test_a_public_address_needs_the_api_token(host: str, token: str | None,
                                              refused: bool) -> None:
    config = Config(http_host=host, api_token=token)
    if refused:
        with pytest.raises(ConfigError, match=r"JULIA_HTTP_HOST.*JULIA_API_TOKEN"):
            require_token_off_loopback(config)
    else:
        require_token_off_loopback(config)


def test_run_refuses_to_serve_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "DATABASE_URL", "JULIA_API_TOKEN")}
    env |= {"JULIA_DATA_DIR": str(tmp_path / "data"), "JULIA_HTTP_HOST": "0.0.0.0"}
    done = subprocess.run([sys.executable, "-m", "julia_chips", "run"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "JULIA_HTTP_HOST=0.0.0.0" in done.stderr and "JULIA_API_TOKEN" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started
