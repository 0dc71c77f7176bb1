"""Decode Evolution API v2 webhook bodies into observations.

Decoding is strict on the fields we use (a wrong type names its path) and open on the rest:
Evolution adds fields between releases, and rejecting those would drop real traffic.
Events we have no use for become `Ignored`, so the endpoint still answers 200.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from julia_chips.contract.observations import (
    ConnectionState,
    ConnectionUpdate,
    DeliveryStatus,
    InboundMessage,
    MessageStatus,
)
from julia_chips.contract.replay import EVOLUTION
from julia_chips.gateways.evolution.jid import phone_from_jid
from julia_chips.gateways.http_exchange import UNREADABLE
from julia_chips.ingest.outcomes import EvolutionObservation, Ignored, WebhookRejected


class _Envelope(msgspec.Struct, kw_only=True):
    event: str
    instance: str


class _ConnectionData(msgspec.Struct, kw_only=True, rename="camel"):
    state: ConnectionState
    status_reason: int | None = None


class _ConnectionBody(msgspec.Struct, kw_only=True):
    instance: str
    data: _ConnectionData


class _Key(msgspec.Struct, kw_only=True, rename="camel"):
    remote_jid: str
    from_me: bool
    id: str
    remote_jid_alt: str | None = None


class _ExtendedText(msgspec.Struct, kw_only=True):
    text: str


class _Content(msgspec.Struct, kw_only=True, rename="camel"):
    conversation: str | None = None
    extended_text_message: _ExtendedText | None = None


# Unix seconds: nothing on WhatsApp predates 2009, and past 5138 `datetime` overflows (a 500
# at the edge, and a deriver stuck on the body).
_UnixSeconds = Annotated[int, msgspec.Meta(ge=1_230_768_000, le=99_999_999_999)]


class _UpsertData(msgspec.Struct, kw_only=True, rename="camel"):
    key: _Key
    message: _Content | None = None
    message_timestamp: _UnixSeconds


class _UpsertBody(msgspec.Struct, kw_only=True):
    instance: str
    data: _UpsertData


class _UpdateData(msgspec.Struct, kw_only=True, rename="camel"):
    key_id: str
    remote_jid: str
    from_me: bool
    status: DeliveryStatus


class _UpdateBody(msgspec.Struct, kw_only=True):
    instance: str
    data: _UpdateData


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_CONNECTION = msgspec.json.Decoder(_ConnectionBody)
_UPSERT = msgspec.json.Decoder(_UpsertBody)
_UPDATE = msgspec.json.Decoder(_UpdateBody)


def decode_evolution(body: bytes, *, received_at: datetime) -> EvolutionObservation:
    """Turn one webhook POST into an observation; raises WebhookRejected naming the bad field.

    :param received_at: our clock at receipt (UTC), used where Evolution's own time is unreliable.
    """
    try:
        event = _ENVELOPE.decode(body).event
        match event:
            case "connection.update":
                return _connection(_CONNECTION.decode(body), received_at)
            case "messages.upsert":
                return _inbound(_UPSERT.decode(body), received_at)
            case "messages.update":
                return _status(_UPDATE.decode(body), received_at)
            case _:
                return Ignored(source="evolution", event=event, reason="event not used")
    except UNREADABLE as exc:
        raise WebhookRejected(f"evolution webhook: {exc}") from exc


def _connection(body: _ConnectionBody, received_at: datetime) -> ConnectionUpdate:
    return ConnectionUpdate(
        instance=body.instance,
        state=body.data.state,
        status_reason=body.data.status_reason,
        observed_at=received_at,
    )


def _inbound(body: _UpsertBody, received_at: datetime) -> EvolutionObservation:
    key = body.data.key
    sent_at = datetime.fromtimestamp(body.data.message_timestamp, UTC)
    if sent_at > received_at + EVOLUTION.ahead:  # a reply dated after we got it: forged
        raise WebhookRejected(f"evolution webhook: messageTimestamp {sent_at.isoformat()} is "
                              "later than its receipt - at `$.data.messageTimestamp`")
    if key.from_me:
        return Ignored(source="evolution", event="messages.upsert", reason="our own message")
    phone = phone_from_jid(key.remote_jid)
    if phone is None and key.remote_jid_alt is not None:
        phone = phone_from_jid(key.remote_jid_alt)  # Baileys 7 LID addressing
    if phone is None:
        return Ignored(source="evolution", event="messages.upsert", reason="not a person's number")
    return InboundMessage(
        instance=body.instance,
        message_id=key.id,
        from_phone=phone,
        text=_text(body.data.message),
        sent_at=sent_at,
    )


def _text(content: _Content | None) -> str:
    if content is None:
        return ""
    if content.conversation is not None:
        return content.conversation
    if content.extended_text_message is not None:
        return content.extended_text_message.text
    return ""


def _status(body: _UpdateBody, received_at: datetime) -> EvolutionObservation:
    data = body.data
    phone = phone_from_jid(data.remote_jid)
    if not data.from_me or phone is None:
        return Ignored(source="evolution", event="messages.update", reason="not a receipt for us")
    return MessageStatus(
        instance=body.instance,
        message_id=data.key_id,
        remote_phone=phone,
        status=data.status,
        observed_at=received_at,
    )
