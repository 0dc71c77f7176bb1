"""What the outside world told us, as typed facts: the health monitor and activator fold them.

Gateways decode webhook bodies into these once (gateways/), so nothing downstream sees a
dict; they live here, beside the other wire types, so the models can fold them without importing
an adapter. Timestamps the sender cannot be trusted with (Evolution's `date_time` is local
time wearing a `Z`) are replaced by our own clock's reading at receipt. Cloud API chips report
trouble as error codes on sends and as account webhooks, not as socket closes; a dispatcher
may also report counters it already summed: those are the last three facts.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from julia_chips.contract.chip_commands import Counter
from julia_chips.contract.timestamps import AwareDatetime

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
    observed_at: AwareDatetime


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A doctor wrote to a chip: consented traffic, and the signal that opens a conversation.

    `from_phone` is E.164 (`+5511…`); `text` is empty for media without a caption, which
    still counts as a reply. `chip_phone` is set when the gateway names the chip by its
    number rather than by an instance we created (the Cloud API: `instance` is then Meta's
    `phone_number_id`); the chip is found by it.
    """

    instance: str
    message_id: str
    from_phone: str
    text: str
    sent_at: AwareDatetime
    chip_phone: str | None = None  # E.164; personal data: never logged unmasked


class MessageStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A receipt for a message a chip sent: feeds delivery and read rates in the health score.

    `chip_phone` as on `InboundMessage`: the chip's number, when the gateway names it so.
    """

    instance: str
    message_id: str
    remote_phone: str
    status: DeliveryStatus
    observed_at: AwareDatetime
    chip_phone: str | None = None  # E.164; personal data: never logged unmasked


class SmsReceived(msgspec.Struct, frozen=True, kw_only=True):
    """An SMS reached a Salvy number; `code` is set only when it is a WhatsApp verification code."""

    sms_id: str
    phone_account_id: str
    destination_phone: str
    origin_phone: str
    text: str
    code: str | None
    received_at: AwareDatetime


Instance = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ErrorCode = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]


class SendRefused(msgspec.Struct, frozen=True, kw_only=True):
    """A send the gateway answered with an error code (Cloud API code, or Baileys' 429)."""

    instance: Instance
    gateway: Literal["cloud_api", "evolution"]
    code: ErrorCode
    observed_at: AwareDatetime


class AccountNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A Cloud API account webhook: a quality change or an account restriction.

    `event` is the webhook's event (FLAGGED, DOWNGRADE, ACCOUNT_RESTRICTION, ...) or, for a
    quality rating read from the number, the rating (GREEN, YELLOW, RED).
    """

    instance: Instance
    field: Literal["phone_number_quality_update", "account_update"]
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    observed_at: AwareDatetime


class TrafficCounted(msgspec.Struct, frozen=True, kw_only=True):
    """Counters a sender already summed (e.g. the dispatcher's own tally of a minute).

    Bounded per report like ObserveTraffic's: more than `Counter` allows is a broken reporter.
    """

    instance: Instance
    sent: Counter = 0
    delivered: Counter = 0
    read: Counter = 0
    replied: Counter = 0
    failed: Counter = 0
    received: Counter = 0
    observed_at: AwareDatetime


HealthSignal = (
    ConnectionUpdate | InboundMessage | MessageStatus | SendRefused | AccountNotice
    | TrafficCounted
)
Observation = HealthSignal | SmsReceived  # every fact a gateway subject may carry
