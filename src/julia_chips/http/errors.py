"""Every error is JSON `{"error": ..., "field": ...}`; bad input is 4xx, never 500.

A dependency that is away (PostgreSQL restarting, NATS reconnecting) answers 503, so a
caller can tell "try again" from "you asked for something wrong".
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
from aiohttp import web
from nats.errors import Error as NatsError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError, NatsError, asyncio.TimeoutError)


class ApiError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    error: str
    field: str | None = None


class ApiProblem(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = ApiError(error=message, field=field)


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(
        ApiError(error=message, field=field)), content_type="application/json", headers=headers)


_AT = re.compile(r"at `\$\.([^`\[]+)")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def field_of(err: msgspec.ValidationError) -> str | None:
    """The query parameter or body field a msgspec validation message names."""
    found = _AT.search(str(err)) or _UNKNOWN.search(str(err)) or _MISSING.search(str(err))
    return found.group(1) if found else None


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiProblem as problem:
        return error_response(problem.status, problem.body.error, problem.body.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, headers=_kept_headers(exc))
    except UNAVAILABLE as err:
        log.warning("%s %s: dependency unavailable: %s", request.method, request.path,
                    type(err).__name__)
        return error_response(503, "a backing service is unavailable; retry shortly")


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
