"""Serve the webhook ingress on loopback for tests: real HTTP, real JetStream, and the
observation deriver that turns what it stores into GATEWAY_OBS observations."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.clock import Clock, SystemClock
from julia_chips.contract.subjects import Stream
from julia_chips.gateways.cloud_api import signature as meta
from julia_chips.gateways.evolution.instance_secret import instance_secret
from julia_chips.gateways.salvy import svix
from julia_chips.ingest.deriver import DeriverSettings, ObservationDeriver
from julia_chips.ingest.webhooks import WebhookIngress, create_webhook_app
from julia_chips.sandbox.world import serve

EVOLUTION_SECRET = "evo-" + secrets.token_hex(8)
SALVY_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
CLOUD_API_SECRET = "meta-" + secrets.token_hex(8)
CLOUD_API_VERIFY_TOKEN = "verify-" + secrets.token_hex(4)
FAST_DERIVER = DeriverSettings(ack_wait=1.0, publish_timeout=1.0, tend=0.1)


def stamped(body: bytes, clock: Clock) -> bytes:
    """`body` as Evolution sends it now by `clock`: `date_time` is when it was sent."""
    fields = json.loads(body)
    fields["date_time"] = clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(fields).encode()


def named_instance(body: bytes) -> str:
    """The instance a body says it is from ("" when it names none)."""
    try:
        return str(json.loads(body).get("instance", ""))
    except (ValueError, AttributeError):
        return ""


@dataclass
class Ingress:
    base_url: str
    session: aiohttp.ClientSession
    clock: Clock = field(default_factory=SystemClock)  # the edge's: signs and stamps bodies

    async def evolution(self, body: bytes, secret: str | None = EVOLUTION_SECRET
                        ) -> tuple[int, dict[str, object]]:
        """Posted as the instance `body` names: its header derived from the master `secret`
        (None: no header)."""
        headers = ({"x-julia-secret": instance_secret(secret, named_instance(body))}
                   if secret is not None else {})
        async with self.session.post(self.base_url + "/webhooks/evolution", data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    async def salvy(self, body: bytes, secret: str = SALVY_SECRET, msg_id: str | None = None
                    ) -> tuple[int, dict[str, object]]:
        msg_id = msg_id or f"msg_{secrets.token_hex(6)}"
        ts = int(self.clock.now().timestamp())
        headers = {"svix-id": msg_id, "svix-timestamp": str(ts),
                   "svix-signature": svix.sign(secret, msg_id, ts, body)}
        async with self.session.post(self.base_url + "/webhooks/salvy", data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    async def cloud_api(self, body: bytes, secret: str | None = CLOUD_API_SECRET
                        ) -> tuple[int, dict[str, object]]:
        """Posted as Meta does: `X-Hub-Signature-256` under `secret` (None: no header)."""
        headers = {meta.SIGNATURE_HEADER: meta.sign(secret, body)} if secret is not None else {}
        async with self.session.post(self.base_url + "/webhooks/cloud-api", data=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()


@asynccontextmanager
async def deriving(nc: NATS, settings: DeriverSettings = FAST_DERIVER
                   ) -> AsyncIterator[ObservationDeriver]:
    """The observation deriver, its durable created before the block starts."""
    deriver = ObservationDeriver(nc, settings)
    await deriver.prepare()
    task = asyncio.create_task(deriver.run())
    try:
        yield deriver
    finally:
        deriver.stop()
        await task


async def stored(js: JetStreamContext, stream: Stream) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def until_stored(js: JetStreamContext, stream: Stream, count: int,
                       timeout: float = 5.0) -> None:
    """Until `stream` holds `count` messages: observations land after the 200, not before."""
    async with asyncio.timeout(timeout):
        while await stored(js, stream) < count:  # noqa: ASYNC110 (polling real I/O)
            await asyncio.sleep(0.01)


async def until_derived(js: JetStreamContext, durable: str = FAST_DERIVER.durable,
                        timeout: float = 5.0) -> None:
    """Until the deriver has acked every raw body stored so far (so an absence is real)."""
    async with asyncio.timeout(timeout):
        while True:
            info = await js.consumer_info(Stream.GATEWAY_IN, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.01)


@asynccontextmanager
async def serving_ingress(js: JetStreamContext, clock: Clock) -> AsyncIterator[Ingress]:
    """The HTTP ingress alone on `clock`: raw bodies in GATEWAY_IN, nothing derived."""
    app = create_webhook_app(WebhookIngress(
        js, clock, evolution_secret=EVOLUTION_SECRET, salvy_secret=SALVY_SECRET,
        cloud_api_secret=CLOUD_API_SECRET, cloud_api_verify_token=CLOUD_API_VERIFY_TOKEN,
        publish_timeout=1.0))
    runner, base = await serve(app)
    try:
        async with aiohttp.ClientSession() as session:
            yield Ingress(base, session, clock)
    finally:
        await runner.cleanup()


@pytest.fixture
async def ingress_only(js: JetStreamContext) -> AsyncIterator[Ingress]:
    """The HTTP ingress alone, on the wall clock (the sandbox's, when one posts to it)."""
    async with serving_ingress(js, SystemClock()) as ingress:
        yield ingress


@pytest.fixture
async def ingress(nc: NATS, ingress_only: Ingress) -> AsyncIterator[Ingress]:
    """The ingress as `julia-chips run` has it: with the deriver running."""
    async with deriving(nc):
        yield ingress_only
