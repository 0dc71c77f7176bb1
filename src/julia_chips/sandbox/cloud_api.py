"""A sandbox WhatsApp Cloud API: the Graph phone-number endpoints the registrar uses, and
the webhooks Meta posts for a registered number.

request_code texts the code through the Salvy sandbox, so it arrives as a signed
`sms.received` webhook, as in production. It enforces Meta's register budget (10 per number
per 72 h → 133016). Faults: `corrupt_codes` (the SMS carries a code that will not verify),
`silence` (no SMS is sent).

A message sent through a registered number (the sandbox Evolution's WHATSAPP-BUSINESS
instances hand theirs over: `react`) gets Meta's `statuses` webhooks (`sent`, then the
doctor's `delivered` and `read`) and the doctor's reply as a `messages` webhook, signed with
`app_secret` (`X-Hub-Signature-256`) and posted to `webhook_url`. Brazilian mobiles are
written as WhatsApp ids without their ninth digit, as Meta writes many of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from julia_chips.clock import Clock, SystemClock
from julia_chips.gateways.cloud_api.signature import SIGNATURE_HEADER, sign
from julia_chips.gateways.evolution.jid import digits_only
from julia_chips.sandbox.doctors import Reaction
from julia_chips.sandbox.salvy_api import SalvyWorld
from julia_chips.sandbox.webhook_poster import WebhookPoster

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
    app_secret: str = ""  # Meta's app secret: signs the webhooks
    webhook_url: str | None = None  # our /webhooks/cloud-api (set in Meta's app dashboard)
    poster: WebhookPoster | None = None
    clock: Clock = field(default_factory=SystemClock)  # dates the webhooks' `timestamp`s

    def registered(self, number_id: str | None) -> SandboxNumber | None:
        """The number behind a Graph id, once registered: only those send and get webhooks."""
        number = self.numbers.get(number_id or "")
        return number if number is not None and number.registered else None

    def react(self, number: SandboxNumber, phone: str, message_id: str,
              reactions: list[Reaction]) -> None:
        """Post what Meta reports of one message sent to `phone`: `sent` at once, then each
        of the doctor's reactions after its delay."""
        self._post(number, {"statuses": [self._status(message_id, phone, "sent")]})
        for reaction in reactions:
            if reaction.kind == "reply":
                value = {"contacts": [{"profile": {"name": ""}, "wa_id": _wa_id(phone)}],
                         "messages": [self._message(phone, reaction.text or "")]}
            else:
                value = {"statuses": [self._status(message_id, phone, reaction.kind)]}
            self._post(number, value, delay=reaction.after)

    def _status(self, message_id: str, phone: str, status: str) -> dict[str, Any]:
        return {"id": message_id, "status": status, "timestamp": self._now(),
                "recipient_id": _wa_id(phone),
                "conversation": {"id": secrets.token_hex(16), "origin": {"type": "service"}},
                "pricing": {"billable": False, "pricing_model": "PMP", "category": "service"}}

    def _message(self, phone: str, text: str) -> dict[str, Any]:
        return {"from": _wa_id(phone), "id": f"wamid.{secrets.token_hex(16).upper()}",
                "timestamp": self._now(), "type": "text", "text": {"body": text}}

    def _now(self) -> str:
        return str(int(self.clock.now().timestamp()))

    def _post(self, number: SandboxNumber, value: dict[str, Any], delay: float = 0.0) -> None:
        if self.webhook_url is None or self.poster is None:
            return
        metadata = {"display_phone_number": digits_only(number.phone),
                    "phone_number_id": number.id}
        body = _ENCODER.encode({"object": "whatsapp_business_account", "entry": [{
            "id": self.waba_id, "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": metadata, **value}}]}]})
        self.poster.post(self.webhook_url, body, {SIGNATURE_HEADER: sign(self.app_secret, body)},
                         delay=delay)


def _wa_id(phone: str) -> str:
    """The WhatsApp id Meta writes for `phone`: a Brazilian mobile without its ninth digit."""
    digits = digits_only(phone)
    if len(digits) == 13 and digits.startswith("55") and digits[4] == "9":
        return digits[:4] + digits[5:]
    return digits


_ENCODER = msgspec.json.Encoder()


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
