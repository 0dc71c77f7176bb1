"""Bearer token on the read endpoints when `JULIA_API_TOKEN` is set.

`/health` stays open for load balancers and `/openapi.json` for tools; webhooks (added by
their own route tables) carry their own signatures and are not behind the token.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from julia_chips.http.errors import Handler, error_response
from julia_chips.http.keys import CONFIG

OPEN_PATHS = frozenset({"/health", "/openapi.json"})
OPEN_PREFIXES = ("/webhooks/",)


def _presented(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@web.middleware
async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    expected = request.app[CONFIG].api_token
    path = request.path
    if not expected or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return await handler(request)
    token = _presented(request)
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        return error_response(401, "missing or wrong bearer token", "Authorization",
                              headers={"WWW-Authenticate": 'Bearer realm="julia-chips"'})
    return await handler(request)
