"""Bearer tokens: each route declares the access it needs (`Access`), this checks it.

Two tokens, so the write endpoints of the operator interface can be given to fewer people
than the read API: `JULIA_API_TOKEN` reads, `JULIA_OPERATOR_TOKEN` reads and operates. With
neither set everything is open, which `run` allows on loopback only
(`require_token_off_loopback`). `/health` stays open for load balancers and `/openapi.json`
for tools; webhooks (added by their own route tables) carry their own signatures.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum

from aiohttp import web
from aiohttp.typedefs import Middleware

from julia_chips.config import Config, ConfigError, is_loopback
from julia_chips.http.errors import Handler, error_response
from julia_chips.http.keys import CONFIG

OPEN_PREFIXES = ("/webhooks/",)


class Access(StrEnum):
    OPEN = "open"  # no token
    READ = "read"  # the read token or the operator token
    OPERATE = "operate"  # the operator token only


def token_guard(declared: Mapping[str, Access]) -> Middleware:
    """The middleware; `declared` maps a route's path template (`/chips/{id}`) to its access.
    A path nobody declared (404, 405) needs the read token: it tells nothing to strangers."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else request.path
        access = declared.get(template, Access.READ)
        if access is Access.OPEN or request.path.startswith(OPEN_PREFIXES):
            return await handler(request)
        refusal = _refusal(request.app[CONFIG], access, _presented(request))
        return refusal if refusal is not None else await handler(request)

    return guard


def require_token_off_loopback(config: Config) -> None:
    """An API bound to a public address with no token would serve the fleet to anyone.

    :raises ConfigError: naming JULIA_HTTP_HOST and JULIA_API_TOKEN.
    """
    if config.api_token or is_loopback(config.http_host):
        return
    raise ConfigError(f"JULIA_HTTP_HOST={config.http_host} is not a loopback address: set "
                      "JULIA_API_TOKEN (and JULIA_OPERATOR_TOKEN for the operator endpoints), "
                      "or bind 127.0.0.1")


def _refusal(config: Config, access: Access, token: str | None) -> web.Response | None:
    read, operate = config.api_token, config.operator_token
    if not (read or operate):
        return None  # no token configured: loopback development
    if access is Access.READ and (_same(token, read) or _same(token, operate)):
        return None
    if access is Access.OPERATE and _same(token, operate):
        return None
    if access is Access.OPERATE and (_same(token, read) or not operate):
        return error_response(403, "this endpoint needs JULIA_OPERATOR_TOKEN", "Authorization")
    return error_response(401, "missing or wrong bearer token", "Authorization",
                          headers={"WWW-Authenticate": 'Bearer realm="julia-chips"'})


def _same(given: str | None, expected: str | None) -> bool:
    """Constant-time; an unset token matches nothing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _presented(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
