"""A sandbox registration agent: what the shipped host scripts (`deploy/vps/`) call over HTTP.

On a real host the operator's agent asks WhatsApp for an SMS code and registers a number with
it; here it answers from the sandbox host's state (`SandboxVpsHost`), which texts the code
through the Salvy sandbox. The protocol is the one `deploy/vps/README.md` specifies: POST
`/request-code`, `/register`, `/release` with a JSON body, bearer token, 200 with the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web


class AgentState(Protocol):
    """The host whose numbers the agent registers (`vps_host.SandboxVpsHost`)."""

    def request_code(self, number: str) -> dict[str, object]: ...

    def register(self, number: str, code: str) -> dict[str, object]: ...

    def release(self, number: str) -> dict[str, object]: ...


STATE = web.AppKey("agent_state", AgentState)
TOKEN = web.AppKey("agent_token", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_agent_app(state: AgentState, token: str) -> web.Application:
    """Serve it on 127.0.0.1 only."""
    app = web.Application(middlewares=[_auth])
    app[STATE], app[TOKEN] = state, token
    app.add_routes([web.post("/request-code", _request_code), web.post("/register", _register),
                    web.post("/release", _release)])
    return app


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get("Authorization") != f"Bearer {request.app[TOKEN]}":
        return web.json_response({"reason": "unauthorized"}, status=401)
    return await handler(request)


async def _fields(request: web.Request, *names: str) -> list[str] | web.Response:
    """The body's digit strings `names`, or a 400 naming the first one missing or bad."""
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"reason": "body is not JSON"}, status=400)
    values = []
    for name in names:
        value = body.get(name) if isinstance(body, dict) else None
        if not (isinstance(value, str) and value.isdigit()):
            return web.json_response({"reason": f"{name} must be digits"}, status=400)
        values.append(value)
    return values


async def _request_code(request: web.Request) -> web.Response:
    fields = await _fields(request, "number")
    if isinstance(fields, web.Response):
        return fields
    return web.json_response(request.app[STATE].request_code(*fields))


async def _register(request: web.Request) -> web.Response:
    fields = await _fields(request, "number", "code")
    if isinstance(fields, web.Response):
        return fields
    return web.json_response(request.app[STATE].register(*fields))


async def _release(request: web.Request) -> web.Response:
    fields = await _fields(request, "number")
    if isinstance(fields, web.Response):
        return fields
    return web.json_response(request.app[STATE].release(*fields))
