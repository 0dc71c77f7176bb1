"""`create_app(config, ...)`: the read API and the operator endpoints, ready for more route
tables (webhooks) or sub-apps.

NATS and PostgreSQL are either handed in (the `run` process shares its connections) or
opened here in `cleanup_ctx` from the config's URLs and closed on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NATS

from julia_chips.clock import Clock, SystemClock
from julia_chips.config import Config
from julia_chips.http.auth import Access, token_guard
from julia_chips.http.dashboard.feed import attach_live_feeds
from julia_chips.http.errors import json_errors
from julia_chips.http.keys import CLOCK, CONFIG, NATS_CONN, POOL
from julia_chips.http.openapi import openapi_document, openapi_handler
from julia_chips.http.routes import ROUTES, Route, declared_access, page_paths, route_table
from julia_chips.infrastructure import connect_nats, nats_identity

POOL_SIZE = 10
T = TypeVar("T")
_CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    config: Config, clock: Clock | None = None, *, nc: NATS | None = None,
    pool: asyncpg.Pool | None = None, routes: Iterable[web.AbstractRouteDef] = (),
    route_access: Mapping[str, Access] = {},
    subapps: Mapping[str, web.Application] = {},
    read_routes: tuple[Route, ...] = ROUTES,
) -> web.Application:
    """The HTTP application.

    :param routes: extra route definitions (e.g. `POST /webhooks/evolution`).
    :param route_access: the access each extra route's path declares (the webhooks are
        open: they verify their own signatures); an undeclared one needs the read token.
    :param subapps: prefix -> application, mounted with `add_subapp`.
    """
    guard = token_guard({**declared_access(read_routes), **route_access},
                        page_paths(read_routes))
    app = web.Application(middlewares=[json_errors, guard])
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    attach_live_feeds(app)  # the dashboard's server-sent events, ended on shutdown
    app.cleanup_ctx.append(_nats_connection(nc))
    app.cleanup_ctx.append(_postgres_pool(pool))
    app.add_routes(route_table(read_routes))
    app.add_routes([openapi_handler(openapi_document(read_routes))])
    app.add_routes(list(routes))
    for prefix, sub in subapps.items():
        app.add_subapp(prefix, sub)
    return app


def _nats_connection(given: NATS | None) -> _CleanupCtx:
    """A connection we opened is drained on shutdown; a given one is left to its owner."""
    return _owned(NATS_CONN, given, _open_nats, lambda nc: nc.drain())


def _postgres_pool(given: asyncpg.Pool | None) -> _CleanupCtx:
    """min_size=0, so the API starts (and says 503) while PostgreSQL is away."""
    return _owned(POOL, given, _open_pool, lambda pool: pool.close())


async def _open_nats(config: Config) -> NATS:
    if config.nats_url is None:
        raise RuntimeError("create_app needs Config.nats_url or an open `nc`")
    return await connect_nats(config.nats_url, nats_identity(config))


async def _open_pool(config: Config) -> asyncpg.Pool:
    if config.database_url is None:
        raise RuntimeError("create_app needs Config.database_url or an open `pool`")
    return await asyncpg.create_pool(config.database_url, min_size=0, max_size=POOL_SIZE,
                                     command_timeout=10)


def _owned(key: web.AppKey[T], given: T | None, open_: Callable[[Config], Awaitable[T]],
           close: Callable[[T], Awaitable[object]]) -> _CleanupCtx:
    """cleanup_ctx for `app[key]`: `given` as is, or opened from the config and closed after."""
    async def resource(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[key] = given
            yield
            return
        app[key] = opened = await open_(app[CONFIG])
        yield
        await close(opened)

    return resource
