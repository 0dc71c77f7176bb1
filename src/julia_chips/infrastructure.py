"""Where NATS and PostgreSQL are: the URLs given, or embedded servers started for this run."""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import nats
from nats.aio.client import Client as NATS

from julia_chips.config import Config
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.nats_auth.roles import ROLE_INBOX

if TYPE_CHECKING:
    from julia_chips.embedded.postgres_server import EmbeddedPostgres

log = logging.getLogger(__name__)


class NatsIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a connection is, beyond a user and password in its URL (docs/security.md): a
    creds file or nkey seed file, TLS files, and the role whose inbox it listens on."""

    role: str | None = None
    creds: Path | None = None
    nkey_seed: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


def nats_identity(config: Config) -> NatsIdentity:
    return NatsIdentity(role=config.nats_role, creds=config.nats_creds,
                        nkey_seed=config.nats_nkey_seed, tls_ca=config.nats_tls_ca,
                        tls_cert=config.nats_tls_cert, tls_key=config.nats_tls_key)


def _tls(identity: NatsIdentity) -> ssl.SSLContext | None:
    if identity.tls_ca is None and identity.tls_cert is None:
        return None
    context = ssl.create_default_context(cafile=identity.tls_ca)
    if identity.tls_cert is not None:
        context.load_cert_chain(identity.tls_cert, identity.tls_key)
    return context


def nats_servers(url: str) -> list[str]:
    """`NATS_URL` as the server list nats-py takes: `nats://a:4222,nats://b:4222` names a
    cluster's seeds the way NATS tools and the other languages' clients read it."""
    return [server.strip() for server in url.split(",") if server.strip()]


def _options(identity: NatsIdentity) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if identity.role is not None:
        options["inbox_prefix"] = ROLE_INBOX.format(role=identity.role)
    if identity.creds is not None:
        options["user_credentials"] = str(identity.creds)
    if identity.nkey_seed is not None:
        options["nkeys_seed"] = str(identity.nkey_seed)
    tls = _tls(identity)
    if tls is not None:
        options["tls"] = tls
    return options


async def connect_nats(url: str, identity: NatsIdentity | None = None) -> NATS:
    """A connection for a long-running part: it reconnects for as long as it takes, since
    every part resumes from JetStream once the server is back. A role's connection listens
    on `_INBOX.<role>` only, the one inbox its permissions let it read."""
    return await nats.connect(nats_servers(url), max_reconnect_attempts=-1,
                              reconnect_time_wait=0.5, **_options(identity or NatsIdentity()))


async def connect_nats_once(url: str, identity: NatsIdentity | None = None, *,
                            timeout: float = 2.0, error_cb: Any = None) -> NATS:
    """A connection for a command that runs and ends (the CLI, a rebuild, an audit): one
    attempt at each server, since nats-py's connect loops for ever on
    max_reconnect_attempts=0; the same identity options as `connect_nats`."""
    extra = {"error_cb": error_cb} if error_cb is not None else {}
    return await nats.connect(nats_servers(url), connect_timeout=timeout,
                              allow_reconnect=False, max_reconnect_attempts=1,
                              reconnect_time_wait=0.2, **extra,
                              **_options(identity or NatsIdentity()))


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
            nats = EmbeddedNats(config.data_dir / "nats", config.partitions,
                                auth=config.nats_auth)
            nats_url = await asyncio.to_thread(nats.start)
            stops.append(nats.stop)
            log.info("embedded nats-server listening on %s%s", nats_url,
                     " (a user per role, docs/security.md)" if config.nats_auth else "")
            if config.nats_auth:  # `run` holds every part, so in development it is admin
                nats_url = nats.url_for("admin")
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
