"""What the outside world told us, as typed facts the health monitor and activator fold.

Webhook bodies are decoded once, here-bound, into these structs; nothing downstream sees a
dict. Timestamps the sender cannot be trusted with (Evolution's `date_time` is local time
wearing a `Z`) are replaced by our own clock's reading at receipt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

ConnectionState = Literal["open", "connecting", "close", "refused"]

# Baileys' numeric message status rendered as names (0 ERROR … 5 PLAYED); DELETED when absent.
DeliveryStatus = Literal[
    "ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED", "DELETED"
]


class ConnectionUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway instance's socket changed state; `status_reason` is Baileys' DisconnectReason.

    401/403/402/406 on `close` are terminal (logged out, banned or locked); other codes are
    reconnected silently by Evolution v2, so a `close` here is always worth acting on.
    """

    instance: str
    state: ConnectionState
    status_reason: int | None
    observed_at: datetime


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A doctor wrote to a chip: consented traffic, and the signal that opens a conversation.

    `from_phone` is E.164 (`+5511…`); `text` is empty for media without a caption, which
    still counts as a reply.
    """

    instance: str
    message_id: str
    from_phone: str
    text: str
    sent_at: datetime


class MessageStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A receipt for a message a chip sent: feeds delivery and read rates in the health score."""

    instance: str
    message_id: str
    remote_phone: str
    status: DeliveryStatus
    observed_at: datetime


class SmsReceived(msgspec.Struct, frozen=True, kw_only=True):
    """An SMS reached a Salvy number; `code` is set only when it is a WhatsApp verification code."""

    sms_id: str
    phone_account_id: str
    destination_phone: str
    origin_phone: str
    text: str
    code: str | None
    received_at: datetime


class Ignored(msgspec.Struct, frozen=True, kw_only=True):
    """A well-formed webhook we deliberately do not act on (group chats, our own echoes, …).

    Returned rather than raised so the HTTP edge can still answer 200: the sender did nothing
    wrong, and an error would only make it retry.
    """

    source: Literal["evolution", "salvy"]
    event: str
    reason: str


EvolutionObservation = ConnectionUpdate | InboundMessage | MessageStatus | Ignored
SalvyObservation = SmsReceived | Ignored


class WebhookRejected(ValueError):
    """A webhook body that does not match the documented shape; the message names the field."""
