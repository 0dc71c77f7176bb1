"""Evolution API v2 request and response shapes, and the results the client hands back.

Wire structs are private to the adapter (camelCase, open to extra fields); the public
results are small frozen structs in our own vocabulary.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from julia_chips.contract.observations import ConnectionState
from julia_chips.gateways.evolution.instance_secret import SECRET_HEADER, instance_secret

Integration = Literal["WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS"]

# What the health monitor and activator consume; everything else would be noise on GATEWAY_IN.
WEBHOOK_EVENTS: tuple[str, ...] = ("CONNECTION_UPDATE", "MESSAGES_UPSERT", "MESSAGES_UPDATE")

class WebhookTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where instances post their webhooks. Each sends, as `x-julia-secret`, its own secret
    derived from `master_secret` (`instance_secret`), never the master itself."""

    url: str
    master_secret: str
    events: tuple[str, ...] = WEBHOOK_EVENTS


class InstanceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway instance to create; `number` and `token` are required for WHATSAPP-BUSINESS."""

    name: str
    webhook: WebhookTarget
    integration: Integration = "WHATSAPP-BAILEYS"
    number: str | None = None
    token: str | None = None


class CreatedInstance(msgspec.Struct, frozen=True, kw_only=True):
    """A new instance; `token` is its own API key (a secret: never log it)."""

    name: str
    instance_id: str
    token: str
    status: str


class LinkCode(msgspec.Struct, frozen=True, kw_only=True):
    """How to link a device: a pairing code (when a number was given) or a QR.

    `already_open` is True when the instance was linked already and there is nothing to scan.
    """

    already_open: bool
    pairing_code: str | None = None
    qr_code: str | None = None
    qr_base64: str | None = None


class SentMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message the gateway accepted; receipts arrive later as `MessageStatus` with this id."""

    message_id: str
    remote_phone: str
    status: str


class WebhookBody(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    enabled: bool
    url: str
    headers: dict[str, str]
    by_events: bool
    base64: bool
    events: list[str]


class CreateBody(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    instance_name: str
    integration: str
    webhook: WebhookBody
    qrcode: bool = False
    number: str | None = None
    token: str | None = None


class SendTextBody(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    number: str
    text: str
    delay: int | None = None  # milliseconds of "composing" shown before the message


class CreatedWire(msgspec.Struct, kw_only=True, rename="camel"):
    instance_name: str
    instance_id: str
    status: str


class CreateResponse(msgspec.Struct, kw_only=True):
    instance: CreatedWire
    hash: str


class StateWire(msgspec.Struct, kw_only=True, rename="camel"):
    instance_name: str
    state: ConnectionState


class StateResponse(msgspec.Struct, kw_only=True):
    instance: StateWire


class ConnectResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """Connect and restart answer one of three shapes; all fields optional to take any of them."""

    instance: StateWire | None = None
    pairing_code: str | None = None
    code: str | None = None
    base64: str | None = None
    error: bool = False
    message: str | None = None


class SentKey(msgspec.Struct, kw_only=True, rename="camel"):
    remote_jid: str
    id: str


class SendResponse(msgspec.Struct, kw_only=True):
    key: SentKey
    status: str = "PENDING"


def create_body(spec: InstanceSpec) -> CreateBody:
    """The v2 create request, webhook included so no event is missed between create and set."""
    webhook = WebhookBody(
        enabled=True,
        url=spec.webhook.url,
        headers={SECRET_HEADER: instance_secret(spec.webhook.master_secret, spec.name)},
        by_events=False,
        base64=False,
        events=list(spec.webhook.events),
    )
    return CreateBody(
        instance_name=spec.name,
        integration=spec.integration,
        webhook=webhook,
        number=spec.number,
        token=spec.token,
    )
