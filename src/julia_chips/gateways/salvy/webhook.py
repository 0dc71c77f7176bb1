"""Decode Salvy webhook bodies (Svix-delivered) into observations.

Verify the Svix signature (`svix.verify`) on the raw bytes before calling this. Both the v3
field `phoneAccountId` and the older `virtualPhoneAccountId` are accepted, since accounts
created through v2 still arrive under the old name.
"""

from __future__ import annotations

import msgspec

from julia_chips.contract.observations import SmsReceived
from julia_chips.contract.timestamps import AwareDatetime
from julia_chips.gateways.http_exchange import UNREADABLE
from julia_chips.gateways.salvy.sms_code import whatsapp_code
from julia_chips.ingest.outcomes import Ignored, SalvyObservation, WebhookRejected


class _Envelope(msgspec.Struct, kw_only=True):
    type: str


class _ServiceDetection(msgspec.Struct, kw_only=True, rename="camel"):
    verification_code: str | None = None


class _Detections(msgspec.Struct, kw_only=True):
    whatsapp: _ServiceDetection | None = None


class _SmsData(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    phone_account_id: str | None = None
    virtual_phone_account_id: str | None = None
    received_at: AwareDatetime
    origin_phone_number: str
    destination_phone_number: str
    message: str
    detections: _Detections | None = None


class _SmsBody(msgspec.Struct, kw_only=True):
    type: str
    data: _SmsData


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_SMS = msgspec.json.Decoder(_SmsBody)


def decode_salvy(body: bytes) -> SalvyObservation:
    """Turn one verified webhook POST into an observation; WebhookRejected names a bad field."""
    try:
        event = _ENVELOPE.decode(body).type
        if event != "sms.received":
            return Ignored(source="salvy", event=event, reason="event not used")
        data = _SMS.decode(body).data
    except UNREADABLE as exc:
        raise WebhookRejected(f"salvy webhook: {exc}") from exc
    account = data.phone_account_id or data.virtual_phone_account_id
    if account is None:
        raise WebhookRejected(
            "salvy webhook: Object missing required field `phoneAccountId` - at `$.data`"
        )
    detected = None
    if data.detections is not None and data.detections.whatsapp is not None:
        detected = data.detections.whatsapp.verification_code
    return SmsReceived(
        sms_id=data.id,
        phone_account_id=account,
        destination_phone=data.destination_phone_number,
        origin_phone=data.origin_phone_number,
        text=data.message,
        code=whatsapp_code(data.message, detected),
        received_at=data.received_at,
    )
