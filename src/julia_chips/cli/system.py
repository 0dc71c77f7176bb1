"""Where the operator commands find the running system, and their connections to it.

NATS_URL (and DATABASE_URL for reads) when set, else the servers a live `julia-chips run`
wrote into the data folder. Unlike `db migrate` or `audit`, these commands never start
servers of their own: a chip provisioned into a throwaway NATS would vanish with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from nats.aio.client import Client as NATS

from julia_chips.clock import Clock
from julia_chips.config import Config
from julia_chips.infrastructure import connect_nats_once, nats_identity
from julia_chips.privacy import without_credentials

CONNECT_TIMEOUT = 3.0  # seconds: an operator waiting on a dead URL wants to hear so soon


class SystemUnreachable(Exception):
    """No running system where the configuration points; the message says which URL."""


async def _quiet(_: Exception) -> None:
    """nats-py logs every connection error itself; the command says it once, clearly."""


class System:
    """A live NATS connection, and PostgreSQL on first use (only reads need it)."""

    def __init__(self, nc: NATS, database_url: str | None, clock: Clock) -> None:
        self.nc = nc
        self.clock = clock
        self._database_url = database_url
        self._conn: asyncpg.Connection | None = None

    async def database(self) -> asyncpg.Connection:
        """:raises SystemUnreachable: no DATABASE_URL known, or nothing answers there."""
        if self._conn is None:
            if self._database_url is None:
                raise SystemUnreachable("this command reads the read models: set DATABASE_URL")
            try:
                self._conn = await asyncpg.connect(self._database_url, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError) as err:
                raise SystemUnreachable(f"PostgreSQL at {without_credentials(self._database_url)}"
                                        f" unreachable: {type(err).__name__}") from err
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        await self.nc.close()


async def _urls(config: Config) -> tuple[str, str | None]:
    from julia_chips.app import ENDPOINTS_FILE, running_endpoints  # every part: only if needed

    if config.nats_url is not None:
        return config.nats_url, config.database_url
    found = await running_endpoints(config)
    if found is None:
        raise SystemUnreachable(
            f"no running system: nothing answers at the servers in "
            f"{config.data_dir / ENDPOINTS_FILE} (start `julia-chips run`, or set NATS_URL)")
    return found.nats_url, config.database_url or found.database_url


@asynccontextmanager
async def reach_system(config: Config, clock: Clock) -> AsyncIterator[System]:
    """:raises SystemUnreachable: naming the URL that did not answer."""
    nats_url, database_url = await _urls(config)
    try:
        # One attempt each way: nats-py's connect loops for ever on max_reconnect_attempts=0.
        nc = await connect_nats_once(nats_url, nats_identity(config), timeout=CONNECT_TIMEOUT,
                                     error_cb=_quiet)
    except Exception as err:  # nats-py raises several kinds, NoServersError among them
        raise SystemUnreachable(f"NATS at {without_credentials(nats_url)} unreachable: "
                                f"{type(err).__name__}") from err
    system = System(nc, database_url, clock)
    try:
        yield system
    finally:
        await system.close()
