"""Webhook ingress: `POST /webhooks/evolution`, `POST /webhooks/salvy` and
`POST /webhooks/cloud-api` (with `GET /webhooks/cloud-api`, Meta's subscription handshake).

Order matters and is the contract (DESIGN.md, "HTTP"): authenticate, check freshness,
decode, store the raw body in GATEWAY_IN, and only then answer 200. Salvy's Svix headers are
checked before its body is read; an Evolution body names its instance, whose own secret
(`instance_secret.py`) the header must carry, so its `instance` and `date_time` are read
first; a Cloud API body is signed whole (`X-Hub-Signature-256`), so the signature is checked
on the raw bytes before any of it is decoded, and each message's and status's `timestamp`
must lie in the replay window. A body older than its replay window (`contract/replay.py`) is
refused: within it, GATEWAY_IN's duplicate window drops a replay. A body we cannot decode
gets a 400 naming the field and nothing is stored, so a bad sender learns at once; NATS
being unreachable gets a 503, so the sender retries and nothing is lost. Retries are
harmless: the raw message carries a `Nats-Msg-Id` derived from the delivery. The typed
observation in GATEWAY_OBS is derived after the 200 by ingest/deriver.py, from the stored
body with the same decoders: one publish per request, and what is decoded here only decides
400 or not.

Mount on any aiohttp application::

    app[WEBHOOK_INGRESS] = WebhookIngress(js, clock, evolution_secret=..., salvy_secret=...,
                                          cloud_api_secret=..., cloud_api_verify_token=...)
    app.add_routes(webhook_routes())  # each open to strangers: WEBHOOK_ACCESS says so
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

import msgspec
import nats.errors
from aiohttp import web
from nats.js.api import Header
from nats.js.client import JetStreamContext

from julia_chips.clock import Clock
from julia_chips.contract.observations import SmsReceived
from julia_chips.contract.replay import CLOUD_API, EVOLUTION, SVIX
from julia_chips.contract.subjects import JuliaHeader, SubjectTokenInvalid, gateway_raw
from julia_chips.contract.timestamps import AwareDatetime
from julia_chips.gateways.cloud_api import signature as meta
from julia_chips.gateways.cloud_api.webhook import decode_cloud_api
from julia_chips.gateways.evolution.instance_secret import SECRET_HEADER, secret_matches
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.gateways.http_exchange import UNREADABLE
from julia_chips.gateways.salvy import svix
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.http.auth import Access
from julia_chips.ingest.outcomes import Ignored, WebhookRejected
from julia_chips.jetstream.acked_publish import AckedPublisher

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # bytes; Evolution's biggest useful body (a long text) is far below
NO_ACCOUNT = "none"  # GATEWAY_IN key for Salvy and Cloud API events that name no account
EVOLUTION_PATH, SALVY_PATH, CLOUD_API_PATH = (
    "/webhooks/evolution", "/webhooks/salvy", "/webhooks/cloud-api")
# Open to anyone without a bearer token: each route checks its sender's signature itself.
WEBHOOK_ACCESS = {path: Access.OPEN for path in (EVOLUTION_PATH, SALVY_PATH, CLOUD_API_PATH)}


class WebhookIngress:
    """What the routes need: JetStream, the clock, and the secrets.

    :param evolution_secret: the master the instances' secrets are derived from.
    :param salvy_secret: Svix's `whsec_...`; ValueError now when it is not base64.
    :param cloud_api_secret: the Meta app secret the Cloud API signs bodies with.
    :param cloud_api_verify_token: what Meta's subscription handshake must present.
    :param publish_timeout: seconds to wait for JetStream's ack before answering 503.
    :param max_body: bytes; a bigger body is refused with 413 before it is read.
    :param clock_speed: how much faster than the wall `clock` runs (the demo's): the replay
        windows stretch with it (`ReplayWindow.scaled`).
    """

    def __init__(self, js: JetStreamContext, clock: Clock, *, evolution_secret: str | None,
                 salvy_secret: str | None, cloud_api_secret: str | None = None,
                 cloud_api_verify_token: str | None = None, publish_timeout: float = 2.0,
                 max_body: int = MAX_BODY, clock_speed: float = 1.0) -> None:
        if salvy_secret is not None:
            svix.check_secret(salvy_secret)
        self.js = js
        # The same durable ack as js.publish without its per-message request, wait_for and
        # JSON parse: the one publish per webhook is the ingress's hot path.
        self.publisher = AckedPublisher(js._nc)
        self.clock = clock
        self.evolution_secret = evolution_secret
        self.salvy_secret = salvy_secret
        self.cloud_api_secret = cloud_api_secret
        self.cloud_api_verify_token = cloud_api_verify_token
        self.publish_timeout = publish_timeout
        self.max_body = max_body
        self.evolution_window = EVOLUTION.scaled(clock_speed)
        self.salvy_window = SVIX.scaled(clock_speed)
        self.cloud_api_window = CLOUD_API.scaled(clock_speed)


WEBHOOK_INGRESS = web.AppKey("webhook_ingress", WebhookIngress)


class _EvolutionClaim(msgspec.Struct, kw_only=True):
    """Who a body says it is from, and when it was sent: checked before the rest is read."""

    instance: str
    date_time: AwareDatetime  # Evolution's local time with a `Z`: its servers run on UTC


_CLAIM = msgspec.json.Decoder(_EvolutionClaim)


class _SalvyAccount(msgspec.Struct, kw_only=True, rename="camel"):
    phone_account_id: str | None = None
    virtual_phone_account_id: str | None = None


class _SalvyEnvelope(msgspec.Struct, kw_only=True):
    data: _SalvyAccount | None = None


def webhook_routes() -> list[web.RouteDef]:
    """The routes; the application must hold a WebhookIngress under WEBHOOK_INGRESS."""
    return [web.post(EVOLUTION_PATH, evolution_webhook),
            web.post(SALVY_PATH, salvy_webhook),
            web.post(CLOUD_API_PATH, cloud_api_webhook),
            web.get(CLOUD_API_PATH, cloud_api_subscription, allow_head=False)]


def create_webhook_app(ingress: WebhookIngress) -> web.Application:
    """A stand-alone application with only the webhook routes (tests, benchmark)."""
    app = web.Application(client_max_size=ingress.max_body + 1)
    app[WEBHOOK_INGRESS] = ingress
    app.add_routes(webhook_routes())
    return app


async def evolution_webhook(request: web.Request) -> web.Response:
    ingress = request.app[WEBHOOK_INGRESS]
    body = await _read_limited(request, ingress.max_body)
    if body is None:
        return _answer(413, f"body larger than {ingress.max_body} bytes")
    received_at = ingress.clock.now()
    try:
        # The secret is the named instance's own: read the name before trusting anything.
        claim = _CLAIM.decode(body)
    except UNREADABLE as exc:
        return _answer(400, f"evolution webhook: {exc}")
    if not secret_matches(ingress.evolution_secret, claim.instance,
                          request.headers.get(SECRET_HEADER)):
        return _answer(401, f"bad or missing {SECRET_HEADER} for this instance")
    if not ingress.evolution_window.admits(claim.date_time, received_at):
        return _answer(400, f"evolution webhook: date_time {claim.date_time.isoformat()} is "
                       "outside the replay window (Evolution must run with TZ=UTC) - at "
                       "`$.date_time`")
    try:
        # Refuse now what the deriver could not derive.
        decode_evolution(body, received_at=received_at)
        raw_subject = gateway_raw("evolution", claim.instance)
    except (WebhookRejected, SubjectTokenInvalid) as exc:
        return _answer(400, str(exc))
    msg_id = "evo:" + hashlib.blake2b(body, digest_size=16).hexdigest()
    return await _store_then_answer(ingress, raw_subject, body, msg_id, received_at)


async def salvy_webhook(request: web.Request) -> web.Response:
    ingress = request.app[WEBHOOK_INGRESS]
    if ingress.salvy_secret is None:
        return _answer(401, "salvy webhook secret not configured")
    received_at = ingress.clock.now()
    try:
        signed = svix.check_headers(request.headers, now=received_at,
                                    window=ingress.salvy_window)
    except svix.SignatureInvalid as exc:  # before the body is read: strangers are cheap
        return _answer(401, str(exc))
    body = await _read_limited(request, ingress.max_body)
    if body is None:
        return _answer(413, f"body larger than {ingress.max_body} bytes")
    try:
        svix.check_signature(ingress.salvy_secret, signed, body)
    except svix.SignatureInvalid as exc:
        return _answer(401, str(exc))
    try:
        observation = decode_salvy(body)
        account = _salvy_account(body, observation)
        raw_subject = gateway_raw("salvy", account)
    except (WebhookRejected, SubjectTokenInvalid) as exc:
        return _answer(400, str(exc))
    msg_id = "svix:" + signed.msg_id  # Svix retries keep the id: dedupe
    return await _store_then_answer(ingress, raw_subject, body, msg_id, received_at)


async def cloud_api_webhook(request: web.Request) -> web.Response:
    ingress = request.app[WEBHOOK_INGRESS]
    if ingress.cloud_api_secret is None:
        return _answer(401, "cloud api app secret not configured")
    body = await _read_limited(request, ingress.max_body)
    if body is None:
        return _answer(413, f"body larger than {ingress.max_body} bytes")
    received_at = ingress.clock.now()
    try:
        # Signed whole: nothing of the body is read before the signature matches.
        meta.check_signature(ingress.cloud_api_secret,
                             request.headers.get(meta.SIGNATURE_HEADER), body)
    except meta.SignatureInvalid as exc:
        return _answer(401, str(exc))
    try:
        found = decode_cloud_api(body)
        raw_subject = gateway_raw("cloud_api", found.number_id or NO_ACCOUNT)
    except (WebhookRejected, SubjectTokenInvalid) as exc:
        return _answer(400, str(exc))
    for path, stamp in found.stamps:
        if not ingress.cloud_api_window.admits(stamp, received_at):
            return _answer(400, f"cloud api webhook: timestamp {stamp.isoformat()} is outside "
                           f"the replay window - at `{path}`")
    msg_id = "meta:" + hashlib.blake2b(body, digest_size=16).hexdigest()  # Meta retries as is
    return await _store_then_answer(ingress, raw_subject, body, msg_id, received_at)


async def cloud_api_subscription(request: web.Request) -> web.Response:
    """Meta's handshake when the webhook URL is set: echo `hub.challenge` to our token."""
    ingress = request.app[WEBHOOK_INGRESS]
    challenge = meta.challenge_answer(request.query, ingress.cloud_api_verify_token)
    if challenge is None:
        return _answer(403, "hub.mode must be subscribe and hub.verify_token ours - at "
                       "`hub.verify_token`")
    return web.Response(text=challenge, content_type="text/plain")


def _salvy_account(body: bytes, observation: SmsReceived | Ignored) -> str:
    if isinstance(observation, SmsReceived):
        return observation.phone_account_id
    try:
        data = msgspec.json.decode(body, type=_SalvyEnvelope).data
    except msgspec.ValidationError:
        return NO_ACCOUNT  # an event we ignore may carry any shape
    account = data and (data.phone_account_id or data.virtual_phone_account_id)
    return account or NO_ACCOUNT


async def _store_then_answer(ingress: WebhookIngress, raw_subject: str, body: bytes, msg_id: str,
                             received_at: datetime) -> web.Response:
    """One publish, acked by JetStream before the 200; the receipt time rides in a header so
    the deriver dates a connection update by our clock at receipt, not its own."""
    headers = {Header.MSG_ID: msg_id, JuliaHeader.RECEIVED_AT: received_at.isoformat()}
    try:
        ack = await ingress.publisher.publish(raw_subject, body, headers,
                                              timeout=ingress.publish_timeout)
    except (nats.errors.Error, TimeoutError, OSError) as exc:
        log.warning("webhook not stored (%s): answering 503", type(exc).__name__)
        return _answer(503, "storage unavailable, retry later", headers={"Retry-After": "1"})
    return web.Response(body=b'{"ok":true,"seq":%d}' % ack.seq, content_type="application/json")


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body; None past `limit` bytes, whether or not a length was declared."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=status, headers=headers)
