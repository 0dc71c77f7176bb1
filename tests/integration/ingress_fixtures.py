"""Serve the webhook ingress on loopback for tests: real HTTP, real JetStream."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from nats.js.client import JetStreamContext

from julia_chips.clock import SystemClock
from julia_chips.gateways import svix
from julia_chips.http.webhooks import WebhookIngress, create_webhook_app
from julia_chips.sandbox.world import serve

EVOLUTION_SECRET = "evo-" + secrets.token_hex(8)
SALVY_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Ingress:
    base_url: str
    session: aiohttp.ClientSession

    async def evolution(self, body: bytes, secret: str | None = EVOLUTION_SECRET
                        ) -> tuple[int, dict[str, object]]:
        headers = {"x-julia-secret": secret} if secret is not None else {}
        async with self.session.post(self.base_url + "/webhooks/evolution", data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    async def salvy(self, body: bytes, secret: str = SALVY_SECRET, msg_id: str | None = None
                    ) -> tuple[int, dict[str, object]]:
        msg_id = msg_id or f"msg_{secrets.token_hex(6)}"
        ts = int(time.time())
        headers = {"svix-id": msg_id, "svix-timestamp": str(ts),
                   "svix-signature": svix.sign(secret, msg_id, ts, body)}
        async with self.session.post(self.base_url + "/webhooks/salvy", data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def ingress(js: JetStreamContext) -> AsyncIterator[Ingress]:
    app = create_webhook_app(WebhookIngress(js, SystemClock(), evolution_secret=EVOLUTION_SECRET,
                                            salvy_secret=SALVY_SECRET, publish_timeout=1.0))
    runner, base = await serve(app)
    async with aiohttp.ClientSession() as session:
        yield Ingress(base, session)
    await runner.cleanup()
