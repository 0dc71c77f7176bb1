"""The sandbox Evolution API v2: the endpoints our adapter uses, with real shapes and errors.

Guard order copies Evolution's: unknown instance (404) before a taken name (403) before the
`apikey` check (401). `connect` and `restart` report failure as HTTP 200 `{"error": true}`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from julia_chips.gateways.evolution.jid import digits_only, jid_from_phone
from julia_chips.sandbox.evolution_world import EvolutionWorld, SandboxInstance

WORLD = web.AppKey("evolution_world", EvolutionWorld)
HOST = web.AppKey("evolution_host", str)  # a host's own listener: its instances
GATEWAY_UP: web.AppKey[Callable[[], bool]] = web.AppKey("evolution_gateway_up")
_INTEGRATIONS = frozenset({"WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS", "EVOLUTION"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
InstanceHandler = Callable[[web.Request, SandboxInstance], Awaitable[web.Response]]


def create_evolution_app(world: EvolutionWorld, *, host: str | None = None,
                         gateway_up: Callable[[], bool] | None = None) -> web.Application:
    """The aiohttp application; serve it on 127.0.0.1 only.

    :param host: this listener is that VPS host's own gateway: the instances created through
        it are the host's, and `fetchInstances` lists only those (the host scripts count its
        slots so). Every listener reaches every instance otherwise: one world behind them.
    :param gateway_up: while it says False, the listener answers 503 (the host's gateway down).
    """
    app = web.Application(middlewares=[_outage])
    app[WORLD] = world
    if host is not None:
        app[HOST] = host
    if gateway_up is not None:
        app[GATEWAY_UP] = gateway_up
    app.add_routes([
        web.post("/instance/create", _create),
        web.get("/instance/fetchInstances", _fetch_instances),
        web.get("/instance/connect/{name}", _connect),
        web.get("/instance/connectionState/{name}", _state),
        web.post("/instance/restart/{name}", _restart),
        web.delete("/instance/logout/{name}", _logout),
        web.delete("/instance/delete/{name}", _delete),
        web.post("/message/sendText/{name}", _send_text),
        web.get("/sandbox/doctors", _doctors),
        web.post("/sandbox/pairing/{name}", _enter_pairing_code),
    ])  # fmt: skip
    return app


def error(status: int, message: Any) -> web.Response:
    """Evolution's error body: `{status, error, response: {message}}`."""
    names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    body = {"status": status, "error": names.get(status, "Error"), "response": {"message": message}}
    return web.json_response(body, status=status)


@web.middleware
async def _outage(request: web.Request, handler: Handler) -> web.StreamResponse:
    world = request.app[WORLD]
    up = request.app.get(GATEWAY_UP)
    if world.outage_requests > 0:
        world.outage_requests -= 1
        return _unavailable()
    if up is not None and not up():
        return _unavailable()
    return await handler(request)


def _unavailable() -> web.Response:
    return web.json_response({"status": 503, "error": "Service Unavailable"}, status=503)


def _guard(request: web.Request) -> SandboxInstance | web.Response:
    """The named instance, or the error Evolution's guards would answer."""
    world = request.app[WORLD]
    name = request.match_info["name"]
    instance = world.instances.get(name)
    if instance is None:
        return error(404, [f'The "{name}" instance does not exist'])
    if request.headers.get("apikey") not in (world.api_key, instance.token):
        return error(401, "Unauthorized")
    return instance


def _with_instance(handler: InstanceHandler) -> Handler:
    """Run `handler` on the named instance only once Evolution's guards let the request in."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        instance = _guard(request)
        if isinstance(instance, web.Response):
            return instance
        return await handler(request, instance)

    return guarded


async def _doctors(request: web.Request) -> web.Response:
    """Not Evolution's: the sandbox's own list of who is on WhatsApp, so a person or a
    process beside the sandbox can find numbers to send to (and see who opted out)."""
    world = request.app[WORLD]
    if request.headers.get("apikey") != world.api_key:
        return error(401, "Unauthorized")
    opted_out = world.doctors.opted_out
    return web.json_response([
        {"doctor_id": d.doctor_id, "phone": d.phone, "name": d.name,
         "opted_out": d.phone in opted_out} for d in world.doctors.doctors])


async def _enter_pairing_code(request: web.Request) -> web.Response:
    """Not Evolution's: the phone's side of linking by number. `{"code": "..."}` as the
    connect gave it opens the instance (200); any other code is refused (400)."""
    world = request.app[WORLD]
    if request.headers.get("apikey") != world.api_key:
        return error(401, "Unauthorized")
    name = request.match_info["name"]
    if name not in world.instances:
        return error(404, [f'The "{name}" instance does not exist'])
    body = await request.json()
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not world.enter_pairing_code(name, code):
        return error(400, ["pairing code not recognised"])
    return _success("Instance linked")


async def _create(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await request.json()
    name = body.get("instanceName")
    if not isinstance(name, str) or not name:
        return error(400, ['instance requires property "instanceName"'])
    if name in world.instances:
        return error(403, [f'This name "{name}" is already in use.'])
    if request.headers.get("apikey") != world.api_key:
        return error(401, "Unauthorized")
    if body.get("integration") not in _INTEGRATIONS:
        return error(400, ["Invalid integration"])
    hook = body.get("webhook") or {}
    instance = SandboxInstance(
        name=name,
        integration=body["integration"],
        token=body.get("token") or secrets.token_hex(16).upper(),
        webhook_url=hook.get("url") if hook.get("enabled") else None,
        webhook_headers=dict(hook.get("headers") or {}),
        events=frozenset(hook.get("events") or ()),
        number=body.get("number"),
        host=request.app.get(HOST),
    )
    world.instances[name] = instance
    return web.json_response(_created(instance, hook), status=201)


async def _fetch_instances(request: web.Request) -> web.Response:
    """v2's list (the fields of its DB rows that matter here), global key only; a host's
    listener lists that host's instances, the shared one all."""
    world = request.app[WORLD]
    if request.headers.get("apikey") != world.api_key:
        return error(401, "Unauthorized")
    host, name = request.app.get(HOST), request.query.get("instanceName")
    rows = [i for i in world.instances.values()
            if (host is None or i.host == host) and name in (None, i.name)]
    if name is not None and not rows:
        return error(404, [f'Instance "{name}" not found'])
    return web.json_response([{
        "id": i.instance_id, "name": i.name, "connectionStatus": i.state,
        "ownerJid": f"{i.number}@s.whatsapp.net" if i.state == "open" and i.number else None,
        "integration": i.integration, "number": i.number,
    } for i in rows])  # fmt: skip


def _created(instance: SandboxInstance, hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance": {
            "instanceName": instance.name, "instanceId": instance.instance_id,
            "integration": instance.integration, "webhookWaBusiness": None,
            "accessTokenWaBusiness": "", "status": "connecting",
        },
        "hash": instance.token,
        "webhook": {
            "webhookUrl": instance.webhook_url, "webhookHeaders": instance.webhook_headers,
            "webhookByEvents": bool(hook.get("byEvents")), "webhookBase64": False,
        },
        "websocket": {"enabled": None},
        "settings": {"rejectCall": False, "groupsIgnore": False, "alwaysOnline": False},
    }  # fmt: skip


@_with_instance
async def _connect(request: web.Request, instance: SandboxInstance) -> web.Response:
    world = request.app[WORLD]
    if instance.connect_error is not None:
        message, instance.connect_error = instance.connect_error, None
        return web.json_response({"error": True, "message": message})
    if instance.state == "open":
        return web.json_response(_state_body(instance))
    number = request.query.get("number")
    codes = world.link_codes(instance, number)
    if instance.state == "close":
        world.start_linking(instance, number)
    return web.json_response(codes)


def _state_body(instance: SandboxInstance) -> dict[str, Any]:
    return {"instance": {"instanceName": instance.name, "state": instance.state}}


@_with_instance
async def _state(request: web.Request, instance: SandboxInstance) -> web.Response:
    return web.json_response(_state_body(instance))


@_with_instance
async def _restart(request: web.Request, instance: SandboxInstance) -> web.Response:
    if instance.state == "close":
        message = f'The "{instance.name}" instance is not connected'
        return web.json_response({"error": True, "message": message})
    request.app[WORLD].disconnect(instance.name, 428)  # closes and reconnects silently
    return web.json_response(_state_body(instance))


@_with_instance
async def _logout(request: web.Request, instance: SandboxInstance) -> web.Response:
    if instance.state == "close":
        return error(400, [f'The "{instance.name}" instance is not connected'])
    request.app[WORLD].logout(instance)
    return _success("Instance logged out")


@_with_instance
async def _delete(request: web.Request, instance: SandboxInstance) -> web.Response:
    world = request.app[WORLD]
    if instance.state != "close":
        world.logout(instance)
    del world.instances[instance.name]
    return _success("Instance deleted")


def _success(message: str) -> web.Response:
    return web.json_response(
        {"status": "SUCCESS", "error": False, "response": {"message": message}}
    )


@_with_instance
async def _send_text(request: web.Request, instance: SandboxInstance) -> web.Response:
    body = await request.json()
    number, text = body.get("number"), body.get("text")
    if not isinstance(number, str) or not number:
        return error(400, ['instance requires property "number"'])
    if not isinstance(text, str) or not text.strip():
        return error(400, ["Text is required"])
    if instance.state != "open":
        return error(400, ["Error: Connection Closed"])
    if instance.rate_limited_sends > 0:
        instance.rate_limited_sends -= 1
        return error(400, ["Error: rate-overlimit"])
    world = request.app[WORLD]
    digits = digits_only(number)
    phone = f"+{digits}"
    if world.doctors.find(phone) is None:
        return error(400, [{"jid": jid_from_phone(digits), "exists": False, "number": digits}])
    return web.json_response(world.send_text(instance, phone, text), status=201)
