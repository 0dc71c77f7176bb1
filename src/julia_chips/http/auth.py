"""Bearer tokens: each route declares the access it needs (`Access`), this checks it.

Two tokens, so the write endpoints of the operator interface can be given to fewer people
than the read API: `JULIA_API_TOKEN` reads, `JULIA_OPERATOR_TOKEN` reads and operates. With
neither set everything is open, which `run` allows on loopback only
(`require_token_off_loopback`). `/health` stays open for load balancers and `/openapi.json`
for tools; webhooks (added by their own route tables, `ingest/webhooks.py`
`WEBHOOK_ACCESS`) are declared open too: they carry their own signatures.

A browser cannot send a bearer header when it navigates or opens an `EventSource`, so the
dashboard's pages take the token once as `?token=`: a valid one is answered with a redirect
to the same page without it, setting an HttpOnly, SameSite=Strict cookie. The cookie holds
a digest of the token, not the token, and grants reads only: a write still needs the bearer
header, so no page of another site can make a browser operate the fleet.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from enum import StrEnum

from aiohttp import web
from aiohttp.typedefs import Middleware

from julia_chips.config import Config, ConfigError, is_loopback
from julia_chips.http.errors import Handler, error_response
from julia_chips.http.keys import CONFIG

SESSION_COOKIE = "julia_session"
TOKEN_PARAM = "token"  # the query parameter a page takes the token by, once


class Access(StrEnum):
    OPEN = "open"  # no token
    READ = "read"  # the read token or the operator token
    OPERATE = "operate"  # the operator token only


def token_guard(declared: Mapping[str, Access], pages: Collection[str] = ()) -> Middleware:
    """The middleware; `declared` maps a route's path template (`/chips/{id}`) to its access.
    A path nobody declared (404, 405) needs the read token: it tells nothing to strangers.
    `pages` are the templates of the HTML pages, which take `?token=` and the cookie."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else request.path
        access = declared.get(template, Access.READ)
        if access is Access.OPEN:
            return await handler(request)
        config = request.app[CONFIG]
        if template in pages and TOKEN_PARAM in request.query:
            return _sign_in(request, config, request.query[TOKEN_PARAM])
        refusal = _refusal(config, access, _presented(request),
                           _session(request) if access is Access.READ else None)
        if refusal is not None and template in pages:
            return _page_refusal(refusal.status)
        return refusal if refusal is not None else await handler(request)

    return guard


def session_value(token: str) -> str:
    """What the cookie holds for `token`: a digest, so the cookie jar never holds a token."""
    return hmac.new(token.encode(), b"julia-chips dashboard session", hashlib.sha256).hexdigest()


def _sign_in(request: web.Request, config: Config, token: str) -> web.Response:
    """A page asked for with `?token=`: the same page without it, the cookie set."""
    read, operate = config.api_token, config.operator_token
    if (read or operate) and not (_same(token, read) or _same(token, operate)):
        return _page_refusal(401)
    kept = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
    location = str(request.rel_url.with_query(kept))  # a path: never another site
    response = web.Response(status=303, headers={"Location": location})
    if read or operate:
        response.set_cookie(SESSION_COOKIE, session_value(token), httponly=True,
                            samesite="Strict", secure=request.secure, path="/")
    return response


def _page_refusal(status: int) -> web.Response:
    """A person at a browser is told how to get in, not handed a JSON body."""
    return web.Response(status=status, content_type="text/html", text=(
        "<!doctype html><title>Julia Chips</title><p>This dashboard needs the read token: "
        "open it once as <code>/?token=&lt;JULIA_API_TOKEN&gt;</code>.</p>"))


def require_token_off_loopback(config: Config) -> None:
    """An API bound to a public address with no token would serve the fleet to anyone.

    :raises ConfigError: naming JULIA_HTTP_HOST and JULIA_API_TOKEN.
    """
    if config.api_token or is_loopback(config.http_host):
        return
    raise ConfigError(f"JULIA_HTTP_HOST={config.http_host} is not a loopback address: set "
                      "JULIA_API_TOKEN (and JULIA_OPERATOR_TOKEN for the operator endpoints), "
                      "or bind 127.0.0.1")


def _refusal(config: Config, access: Access, token: str | None,
             session: str | None = None) -> web.Response | None:
    """None when the request may go on. `session` is the cookie, offered for reads only."""
    read, operate = config.api_token, config.operator_token
    if not (read or operate):
        return None  # no token configured: loopback development
    if access is Access.READ and (_same(token, read) or _same(token, operate)):
        return None
    if session is not None and any(
            _same(session, session_value(t)) for t in (read, operate) if t):
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


def _session(request: web.Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def _presented(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
