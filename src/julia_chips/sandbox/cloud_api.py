"""A sandbox WhatsApp Cloud API: the Graph phone-number endpoints the registrar uses.

request_code texts the code through the Salvy sandbox, so it arrives as a signed
`sms.received` webhook, as in production. It enforces Meta's register budget (10 per number
per 72 h → 133016). Faults: `corrupt_codes` (the SMS carries a code that will not verify),
`silence` (no SMS is sent).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from julia_chips.sandbox.salvy_api import SalvyWorld

GRAPH_VERSION = "v21.0"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SandboxNumber:
    id: str
    phone: str  # E.164
    code: str | None = None
    verified: bool = False
    registered: bool = False
    register_calls: int = 0
    verify_calls: int = 0
    code_requests: int = 0


@dataclass
class CloudApiWorld:
    token: str
    waba_id: str
    salvy: SalvyWorld
    numbers: dict[str, SandboxNumber] = field(default_factory=dict)
    corrupt_codes: int = 0
    silence: bool = False
    register_limit: int = 10


WORLD = web.AppKey("cloud_api_world", CloudApiWorld)


def create_cloud_api_app(world: CloudApiWorld) -> web.Application:
    app = web.Application(middlewares=[_auth])
    app[WORLD] = world
    base = f"/{GRAPH_VERSION}"
    app.add_routes([
        web.get(base + "/{waba}/phone_numbers", _list),
        web.post(base + "/{waba}/phone_numbers", _add),
        web.get(base + "/{node}", _get),
        web.post(base + "/{node}/request_code", _request_code),
        web.post(base + "/{node}/verify_code", _verify_code),
        web.post(base + "/{node}/register", _register),
    ])  # fmt: skip
    return app


def graph_error(status: int, code: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "OAuthException", "code": code,
                      "fbtrace_id": secrets.token_hex(6)}}
    return web.json_response(body, status=status)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get("Authorization") != f"Bearer {request.app[WORLD].token}":
        return graph_error(401, 190, "Invalid OAuth access token")
    return await handler(request)


def _view(number: SandboxNumber) -> dict[str, str]:
    return {"id": number.id, "display_phone_number": number.phone,
            "status": "CONNECTED" if number.registered else "PENDING",
            "code_verification_status": "VERIFIED" if number.verified else "NOT_VERIFIED"}


async def _list(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    if request.match_info["waba"] != world.waba_id:
        return graph_error(400, 100, "Unsupported get request")
    return web.json_response({"data": [_view(n) for n in world.numbers.values()]})


async def _add(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await request.json()
    phone = f"+{body.get('cc', '')}{body.get('phone_number', '')}"
    if any(n.phone == phone for n in world.numbers.values()):
        return graph_error(400, 100, "Phone number already exists in this account")
    number = SandboxNumber(id=str(10**14 + len(world.numbers) + 1), phone=phone)
    world.numbers[number.id] = number
    return web.json_response({"id": number.id})


def _number(request: web.Request) -> SandboxNumber | web.Response:
    number = request.app[WORLD].numbers.get(request.match_info["node"])
    if number is None:
        return graph_error(400, 100, "Unsupported post request: object does not exist")
    return number


async def _get(request: web.Request) -> web.Response:
    number = _number(request)
    return number if isinstance(number, web.Response) else web.json_response(_view(number))


async def _request_code(request: web.Request) -> web.Response:
    world, number = request.app[WORLD], _number(request)
    if isinstance(number, web.Response):
        return number
    number.code_requests += 1
    if world.silence:
        number.code = f"{secrets.randbelow(10**6):06d}"  # "sent", but it never arrives
        return web.json_response({"success": True})
    code = world.salvy.send_whatsapp_code(number.phone)
    if code is None:
        return graph_error(400, 136024, "Verification code could not be sent")
    number.code = code
    if world.corrupt_codes > 0:
        world.corrupt_codes -= 1
        number.code = f"{(int(code) + 1) % 10**6:06d}"  # what was texted will not verify
    return web.json_response({"success": True})


async def _verify_code(request: web.Request) -> web.Response:
    number = _number(request)
    if isinstance(number, web.Response):
        return number
    number.verify_calls += 1
    code = (await request.json()).get("code")
    if number.code is None or code != number.code:
        return graph_error(400, 136025, "Code couldn't be verified")
    number.verified, number.code = True, None
    return web.json_response({"success": True})


async def _register(request: web.Request) -> web.Response:
    world, number = request.app[WORLD], _number(request)
    if isinstance(number, web.Response):
        return number
    number.register_calls += 1
    if number.register_calls > world.register_limit:
        return graph_error(400, 133016, "Account register deregister rate limit exceeded")
    pin = (await request.json()).get("pin")
    if not (isinstance(pin, str) and pin.isdigit() and len(pin) == 6):
        return graph_error(400, 100, "Param pin must be 6 digits")
    if not number.verified:
        return graph_error(400, 133006, "Phone number needs to be verified before registering")
    number.registered = True
    return web.json_response({"success": True})
