"""The sandbox Salvy API (v3 paths) and its Svix-signed `sms.received` webhooks.

It keeps Salvy's promises the adapter relies on: an `idempotency-key` replayed with the same
body returns the same number (with different parameters: `idempotency-parameters-mismatch-
error`), and a 429 `too-many-attempts` with `Retry-After` means nothing was executed.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from julia_chips.clock import Clock
from julia_chips.gateways.salvy import svix
from julia_chips.sandbox.webhook_poster import WebhookPoster

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CANCEL_REASONS = frozenset({
    "employee-fired", "unnecessary", "no-coverage", "technical-problems",
    "whatsapp-problems", "whatsapp-blocked", "sim-card-swap", "other",
})  # fmt: skip
_ENCODER = msgspec.json.Encoder()


class SalvyWorld:
    """Phone accounts, DDD stock, throttling and the SMS webhook target."""

    def __init__(
        self,
        *,
        token: str,
        webhook_secret: str,
        poster: WebhookPoster,
        clock: Clock,
        seed: int,
        stock: dict[int, bool] | None = None,
    ) -> None:
        """:param stock: DDD → in stock; defaults to a few big metro areas, 31 sold out."""
        self.token = token
        self.webhook_secret = webhook_secret
        self.webhook_url: str | None = None
        self.stock = stock if stock is not None else {11: True, 21: True, 31: False, 41: True}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.throttled_requests = 0
        self.retry_after = 1
        self._idempotency: dict[str, tuple[bytes, str]] = {}
        self._poster = poster
        self._clock = clock
        self._rng = random.Random(seed)

    def throttle(self, requests: int, retry_after: int = 1) -> None:
        """The next `requests` calls get 429 `too-many-attempts` with `Retry-After` seconds."""
        self.throttled_requests = requests
        self.retry_after = retry_after

    def deliver_sms(
        self, account_id: str, text: str, *, origin: str, whatsapp_code: str | None
    ) -> str:
        """POST an `sms.received` webhook for `account_id`, signed like Svix; returns the sms id."""
        if self.webhook_url is None:
            raise RuntimeError("no Salvy webhook URL configured in the sandbox")
        account = self.accounts[account_id]
        sms_id = f"sms_{secrets.token_hex(8)}"
        detections = {"whatsapp": {"verificationCode": whatsapp_code}} if whatsapp_code else {}
        now = self._clock.now()
        body = _ENCODER.encode({
            "type": "sms.received",
            "timestamp": _iso(now),
            "data": {
                "id": sms_id, "phoneAccountId": account_id, "receivedAt": _iso(now),
                "originPhoneNumber": origin, "destinationPhoneNumber": account["phoneNumber"],
                "message": text, "detections": detections,
            },
        })  # fmt: skip
        msg_id = f"msg_{secrets.token_hex(10)}"
        timestamp = int(now.timestamp())
        headers = {
            "svix-id": msg_id,
            "svix-timestamp": str(timestamp),
            "svix-signature": svix.sign(self.webhook_secret, msg_id, timestamp, body),
        }
        self._poster.post(self.webhook_url, body, headers)
        return sms_id

    def send_whatsapp_code(self, phone: str) -> str | None:
        """WhatsApp texts its code to `phone` (E.164); None if no account has that number."""
        account_id = next(
            (a["id"] for a in self.accounts.values() if a["phoneNumber"] == phone), None
        )
        if account_id is None:
            return None
        code = f"{self._rng.randrange(10**6):06d}"
        text = (
            f"Seu código do WhatsApp: {code[:3]}-{code[3:]}\n"
            "Não compartilhe este código com ninguém.\n4sgLq1p5sV6"
        )
        self.deliver_sms(account_id, text, origin="+15550100", whatsapp_code=code)
        return code

    def create(self, area_code: int, name: str | None) -> dict[str, Any]:
        account_id = f"pa_{secrets.token_hex(8)}"
        account = {
            "id": account_id, "name": name, "status": "available",
            "phoneNumber": f"+55{area_code}9{self._rng.randrange(10**7, 10**8)}",
            "createdAt": _iso(self._clock.now()), "canceledAt": None, "cancelReason": None,
        }  # fmt: skip
        self.accounts[account_id] = account
        return account

    def cancel(self, account: dict[str, Any], reason: str) -> None:
        account.update(status="canceled", canceledAt=_iso(self._clock.now()), cancelReason=reason)

    def remember(self, key: str, body: bytes, account_id: str) -> None:
        self._idempotency[key] = (body, account_id)

    def recall(self, key: str) -> tuple[bytes, str] | None:
        return self._idempotency.get(key)


WORLD = web.AppKey("salvy_world", SalvyWorld)


def create_salvy_app(world: SalvyWorld) -> web.Application:
    """The aiohttp application; serve it on 127.0.0.1 only."""
    app = web.Application(middlewares=[_throttle_and_auth])
    app[WORLD] = world
    app.add_routes([
        web.get("/api/v3/area-codes", _area_codes),
        web.post("/api/v3/phone-accounts/mobile-did", _create),
        web.get("/api/v3/phone-accounts", _list),
        web.get("/api/v3/phone-accounts/{id}", _get),
        web.post("/api/v3/phone-accounts/{id}/cancel", _cancel),
    ])  # fmt: skip
    return app


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


@web.middleware
async def _throttle_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    world = request.app[WORLD]
    if world.throttled_requests > 0:
        world.throttled_requests -= 1
        retry = str(world.retry_after)
        return _error(429, "too-many-attempts", "Rate limit exceeded", **{"Retry-After": retry})
    if request.headers.get("Authorization") != f"Bearer {world.token}":
        return _error(401, "unauthorized", "Invalid API key")
    return await handler(request)


async def _area_codes(request: web.Request) -> web.Response:
    stock = request.app[WORLD].stock
    only = request.query.get("available") == "true"
    codes = [
        {"areaCode": ddd, "available": ok} for ddd, ok in sorted(stock.items()) if ok or not only
    ]
    return web.json_response({"areaCodes": codes})


async def _create(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    raw = await request.read()
    key = request.headers.get("idempotency-key")
    if key is not None and (seen := world.recall(key)) is not None:
        if seen[0] != raw:
            return _error(409, "idempotency-parameters-mismatch-error", "Key reused")
        return web.json_response(world.accounts[seen[1]], status=201)
    body = msgspec.json.decode(raw)
    area_code = body.get("areaCode") if isinstance(body, dict) else None
    if not isinstance(area_code, int) or area_code not in world.stock:
        return _error(400, "phone-account-area-code-invalid", "Invalid area code")
    if not world.stock[area_code]:
        return _error(422, "did-area-code-out-of-stock", "No numbers for this area code")
    account = world.create(area_code, body.get("name"))
    if key is not None:
        world.remember(key, raw, account["id"])
    return web.json_response(account, status=201)


async def _list(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    statuses = request.query.getall("status", [])
    page, size = int(request.query.get("page", "1")), int(request.query.get("pageSize", "50"))
    rows = [a for a in world.accounts.values() if not statuses or a["status"] in statuses]
    pages = max(1, -(-len(rows) // size))
    data = rows[(page - 1) * size : page * size]
    pagination = {"page": page, "pageSize": size, "totalCount": len(rows), "totalPages": pages}
    return web.json_response({"data": data, "pagination": pagination})


async def _get(request: web.Request) -> web.Response:
    account = request.app[WORLD].accounts.get(request.match_info["id"])
    if account is None:
        return _error(404, "phone-account-not-found", "Phone account not found")
    return web.json_response(account)


async def _cancel(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    account = world.accounts.get(request.match_info["id"])
    if account is None:
        return _error(404, "phone-account-not-found", "Phone account not found")
    body = await request.json()
    if body.get("reason") not in _CANCEL_REASONS:
        return _error(400, "validation-error", "Invalid cancel reason")
    if account["status"] == "canceled":
        return _error(409, "phone-account-status-invalid", "Phone account already canceled")
    world.cancel(account, body["reason"])
    return web.json_response(account)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
