"""Real servers for the tests: nats-server and PostgreSQL from their wheels, on free ports.

`NATS_URL` / `DATABASE_URL`, when set, replace the embedded servers. Each test that asks
for `nats_url` gets its own nats-server (it starts in ~0.1 s), so streams, leases and
consumers never leak between tests; PostgreSQL is started once and each test that asks
gets a fresh database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.jetstream.streams import ensure_streams

PARTITIONS = 4
LEASE_TTL = 2.0
# The `julia-chips run`s tests start (with the environment they inherit) run no demo fleet
# unless a test asks for one (tests/integration/test_demo.py): theirs are the only chips.
os.environ.setdefault("JULIA_DEMO", "off")


@pytest.fixture
def nats_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedNats | None]:
    """None when NATS_URL is set, unless the test is marked `own_nats_server` (it stops or
    kills the server, which it may only do to one of its own)."""
    if os.environ.get("NATS_URL") and request.node.get_closest_marker("own_nats_server") is None:
        yield None
        return
    server = EmbeddedNats(tmp_path / "nats", PARTITIONS)
    server.start()
    yield server
    server.stop()


async def crash_and_restart(server: EmbeddedNats | None, nc: NATS) -> None:
    """SIGKILL the server, start it again on the same data and port, and wait until `nc` is
    back (tests marked `own_nats_server`)."""
    assert server is not None  # own_nats_server: always one we may kill
    server.kill()
    await asyncio.sleep(0.5)
    server.start()
    async with asyncio.timeout(10):
        while not nc.is_connected:  # noqa: ASYNC110 (polling real I/O)
            await asyncio.sleep(0.05)


@pytest.fixture
def nats_url(nats_server: EmbeddedNats | None) -> str:
    return nats_server.url if nats_server else os.environ["NATS_URL"]


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await ensure_streams(conn.jetstream(), replicas=1, lease_ttl=LEASE_TTL)
    yield conn
    await conn.close()


@pytest.fixture
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from julia_chips.embedded.postgres_server import EmbeddedPostgres
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", fast=True)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh, empty database on the shared server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = postgres_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def new_chip_id() -> str:
    return str(uuid.uuid4())
