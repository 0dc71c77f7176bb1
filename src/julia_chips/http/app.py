"""`create_app(config, ...)`: the read API, ready for more route tables (webhooks) or sub-apps.

NATS and PostgreSQL are either handed in (the `run` process shares its connections) or
opened here in `cleanup_ctx` from the config's URLs and closed on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NATS

from julia_chips.clock import Clock, SystemClock
from julia_chips.config import Config
from julia_chips.http.auth import bearer_token
from julia_chips.http.errors import json_errors
from julia_chips.http.keys import CLOCK, CONFIG, NATS_CONN, POOL
from julia_chips.http.openapi import openapi_document, openapi_handler
from julia_chips.http.routes import READ_ROUTES, Route, route_table
from julia_chips.infrastructure import connect_nats

POOL_SIZE = 10


def create_app(
    config: Config, clock: Clock | None = None, *, nc: NATS | None = None,
    pool: asyncpg.Pool | None = None, routes: Iterable[web.AbstractRouteDef] = (),
    subapps: Mapping[str, web.Application] = {},
    read_routes: tuple[Route, ...] = READ_ROUTES,
) -> web.Application:
    """The HTTP application.

    :param routes: extra route definitions (e.g. `POST /webhooks/evolution`); paths under
        `/webhooks/` are not behind the bearer token, they verify their own signatures.
    :param subapps: prefix -> application, mounted with `add_subapp`.
    """
    app = web.Application(middlewares=[json_errors, bearer_token])
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.append(_nats_connection(nc))
    app.cleanup_ctx.append(_postgres_pool(pool))
    app.add_routes(route_table(read_routes))
    app.add_routes([openapi_handler(openapi_document(read_routes))])
    app.add_routes(list(routes))
    for prefix, sub in subapps.items():
        app.add_subapp(prefix, sub)
    return app


def _nats_connection(given: NATS | None):  # type: ignore[no-untyped-def]
    async def nats_connection(app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: a connection we opened is drained; a given one is left to its owner."""
        if given is not None:
            app[NATS_CONN] = given
            yield
            return
        url = app[CONFIG].nats_url
        if url is None:
            raise RuntimeError("create_app needs Config.nats_url or an open `nc`")
        app[NATS_CONN] = await connect_nats(url)
        yield
        await app[NATS_CONN].drain()

    return nats_connection


def _postgres_pool(given: asyncpg.Pool | None):  # type: ignore[no-untyped-def]
    async def postgres_pool(app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: min_size=0, so the API starts (and says 503) while PostgreSQL is away."""
        if given is not None:
            app[POOL] = given
            yield
            return
        url = app[CONFIG].database_url
        if url is None:
            raise RuntimeError("create_app needs Config.database_url or an open `pool`")
        app[POOL] = await asyncpg.create_pool(url, min_size=0, max_size=POOL_SIZE,
                                              command_timeout=10)
        yield
        await app[POOL].close()

    return postgres_pool
