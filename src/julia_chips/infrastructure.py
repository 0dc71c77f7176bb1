"""Where NATS and PostgreSQL are: the URLs given, or embedded servers started for this run."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import nats
from nats.aio.client import Client as NATS

from julia_chips.config import Config
from julia_chips.embedded.nats_server import EmbeddedNats

if TYPE_CHECKING:
    from julia_chips.embedded.postgres_server import EmbeddedPostgres

log = logging.getLogger(__name__)


async def connect_nats(url: str) -> NATS:
    """A connection for a long-running part: it reconnects for as long as it takes, since
    every part resumes from JetStream once the server is back."""
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)


class Endpoints(msgspec.Struct, frozen=True):
    nats_url: str
    database_url: str


@asynccontextmanager
async def infrastructure(config: Config, fast_postgres: bool = False) -> AsyncIterator[Endpoints]:
    """Yield reachable endpoints; embedded servers stop when the block ends."""
    stops = []
    try:
        nats_url = config.nats_url
        if nats_url is None:
            nats = EmbeddedNats(config.data_dir / "nats", config.partitions)
            nats_url = await asyncio.to_thread(nats.start)
            stops.append(nats.stop)
            log.info("embedded nats-server listening on %s", nats_url)
        database_url = config.database_url
        if database_url is None:
            postgres = _embedded_postgres(config.data_dir / "postgres" / "data", fast_postgres)
            database_url = await asyncio.to_thread(postgres.start)
            stops.append(postgres.stop)
            log.info("embedded PostgreSQL listening on 127.0.0.1:%d", postgres.port)
        yield Endpoints(nats_url=nats_url, database_url=database_url)
    finally:
        for stop in reversed(stops):
            await asyncio.to_thread(stop)


def _embedded_postgres(data_dir: Path, fast: bool) -> EmbeddedPostgres:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from julia_chips.embedded.postgres_server import EmbeddedPostgres
    return EmbeddedPostgres(data_dir.resolve(), fast=fast)
