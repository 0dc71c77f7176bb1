"""Decode WhatsApp Cloud API webhook bodies into the observations Evolution's give.

One body (`object: whatsapp_business_account`) holds `entry[].changes[]`; a change of field
`messages` has `value.metadata` (the chip's `display_phone_number` and Meta's
`phone_number_id`), `messages[]` a doctor sent and `statuses[]` of the messages a chip sent.
Each becomes an `InboundMessage` or a `MessageStatus`, with `instance` = `phone_number_id`
and `chip_phone` = the number, by which the health monitor and the feedback part find the
chip. Meta's status names map onto Baileys' (`sent` → `SERVER_ACK`, which is no receipt in
the ledger but counts a send for the health score; `delivered`, `read`, `failed` → `ERROR`).

Strict on the fields used (a wrong type names its path), open on the rest: Meta adds fields
and message types between versions. What we have no use for is skipped: other fields
(`account_update`, template updates), `system` and `unsupported` messages, unknown statuses.
Any other message type (image, audio, reaction, …) is a reply without text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, NamedTuple

import msgspec

from julia_chips.contract.observations import DeliveryStatus, InboundMessage, MessageStatus
from julia_chips.gateways.evolution.jid import digits_only
from julia_chips.gateways.http_exchange import UNREADABLE
from julia_chips.ingest.outcomes import WebhookRejected
from julia_chips.phones import normalise_phone

# Unix seconds as Meta writes them (a string); bounds as Evolution's: nothing on WhatsApp
# predates 2009, and past 5138 `datetime` overflows.
_Stamp = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,11}$")]
_EARLIEST = 1_230_768_000
_Digits = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9][0-9 ()-]{0,30}$")]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_NumberId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,32}$")]

_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "SERVER_ACK", "delivered": "DELIVERY_ACK", "read": "READ", "failed": "ERROR"}
_NOT_REPLIES = frozenset({"system", "unsupported", "unknown", "request_welcome"})


class _Text(msgspec.Struct, kw_only=True):
    body: str = ""


class _Message(msgspec.Struct, kw_only=True, rename={"sender": "from"}):
    sender: _Digits
    id: _Id
    timestamp: _Stamp
    type: str
    text: _Text | None = None


class _Status(msgspec.Struct, kw_only=True):
    id: _Id
    status: str
    timestamp: _Stamp
    recipient_id: _Digits


class _Metadata(msgspec.Struct, kw_only=True):
    display_phone_number: _Digits
    phone_number_id: _NumberId


class _Messages(msgspec.Struct, kw_only=True):
    metadata: _Metadata
    messages: list[_Message] = []
    statuses: list[_Status] = []


class _Change(msgspec.Struct, kw_only=True):
    field: str
    value: msgspec.Raw  # its shape depends on `field`: decoded only for `messages`


class _Entry(msgspec.Struct, kw_only=True):
    id: str
    changes: list[_Change] = []


class _Body(msgspec.Struct, kw_only=True):
    object: str
    entry: list[_Entry]


class CloudApiWebhook(NamedTuple):
    """What one body says (a result, never decoded from anything): its facts in body order,
    each one's time with its JSON path (for the edge's replay window), and the number it is
    about (the raw subject's key)."""

    number_id: str | None  # the first `phone_number_id` named; None when none is
    facts: tuple[InboundMessage | MessageStatus, ...]
    stamps: tuple[tuple[str, datetime], ...]


_BODY = msgspec.json.Decoder(_Body)
_VALUE = msgspec.json.Decoder(_Messages)


def decode_cloud_api(body: bytes) -> CloudApiWebhook:
    """Turn one webhook POST into its facts; raises WebhookRejected naming the bad field."""
    try:
        envelope = _BODY.decode(body)
    except UNREADABLE as exc:
        raise WebhookRejected(f"cloud api webhook: {exc}") from exc
    facts: list[InboundMessage | MessageStatus] = []
    stamps: list[tuple[str, datetime]] = []
    number_id: str | None = None
    for e, entry in enumerate(envelope.entry):
        for c, change in enumerate(entry.changes):
            if change.field != "messages":
                continue
            path = f"$.entry[{e}].changes[{c}].value"
            try:
                value = _VALUE.decode(change.value)
            except UNREADABLE as exc:
                raise WebhookRejected(f"cloud api webhook: {_within(exc, path)}") from exc
            number_id = number_id or value.metadata.phone_number_id
            _facts_of(value, path, facts, stamps)
    return CloudApiWebhook(number_id=number_id, facts=tuple(facts), stamps=tuple(stamps))


def _facts_of(value: _Messages, path: str, facts: list[InboundMessage | MessageStatus],
              stamps: list[tuple[str, datetime]]) -> None:
    number = value.metadata
    chip = {"instance": number.phone_number_id,
            "chip_phone": normalise_phone(number.display_phone_number)}
    for n, message in enumerate(value.messages):
        at = _time(message.timestamp, f"{path}.messages[{n}].timestamp", stamps)
        if message.type in _NOT_REPLIES:
            continue
        text = message.text.body if message.type == "text" and message.text else ""
        facts.append(InboundMessage(message_id=message.id, from_phone=_phone(message.sender),
                                    text=text, sent_at=at, **chip))
    for n, status in enumerate(value.statuses):
        at = _time(status.timestamp, f"{path}.statuses[{n}].timestamp", stamps)
        if (delivery := _STATUSES.get(status.status)) is None:
            continue  # `deleted`, `warning`, …: nothing a send's ledger records
        facts.append(MessageStatus(message_id=status.id, remote_phone=_phone(status.recipient_id),
                                   status=delivery, observed_at=at, **chip))


def _time(stamp: str, path: str, stamps: list[tuple[str, datetime]]) -> datetime:
    seconds = int(stamp)
    if seconds < _EARLIEST:
        raise WebhookRejected(f"cloud api webhook: timestamp {stamp} is before 2009 - at "
                              f"`{path}`")
    at = datetime.fromtimestamp(seconds, UTC)
    stamps.append((path, at))
    return at


def _phone(digits: str) -> str:
    """A WhatsApp id (`5511…`) as E.164, as Evolution's decoder writes it."""
    return normalise_phone(digits_only(digits))


def _within(exc: Exception, path: str) -> str:
    """msgspec's message with its `$` path placed inside the change's `value`."""
    return str(exc).replace("`$", f"`{path}", 1) if "`$" in str(exc) else f"{exc} - at `{path}`"
