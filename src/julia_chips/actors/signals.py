"""Health signals the gateway observations (gateways/observations.py) do not carry yet.

Cloud API chips report trouble as error codes on sends and as account webhooks, not as socket
closes; a dispatcher may also report counters it already summed. These are typed here so the
health fold never sees a dict; they can move into gateways/observations.py when it grows them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from julia_chips.gateways.observations import ConnectionUpdate, InboundMessage, MessageStatus

Instance = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# Per report, like ObserveTraffic's: more than this is a broken reporter, not traffic.
Counter = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
ErrorCode = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]


class SendRefused(msgspec.Struct, frozen=True, kw_only=True):
    """A send the gateway answered with an error code (Cloud API code, or Baileys' 429)."""

    instance: Instance
    gateway: Literal["cloud_api", "evolution"]
    code: ErrorCode
    observed_at: datetime


class AccountNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A Cloud API account webhook: a quality change or an account restriction.

    `event` is the webhook's event (FLAGGED, DOWNGRADE, ACCOUNT_RESTRICTION, ...) or, for a
    quality rating read from the number, the rating (GREEN, YELLOW, RED).
    """

    instance: Instance
    field: Literal["phone_number_quality_update", "account_update"]
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    observed_at: datetime


class TrafficCounted(msgspec.Struct, frozen=True, kw_only=True):
    """Counters a sender already summed (e.g. the dispatcher's own tally of a minute)."""

    instance: Instance
    sent: Counter = 0
    delivered: Counter = 0
    read: Counter = 0
    replied: Counter = 0
    failed: Counter = 0
    received: Counter = 0
    observed_at: datetime


HealthSignal = (
    ConnectionUpdate | InboundMessage | MessageStatus | SendRefused | AccountNotice
    | TrafficCounted
)


def signal_time(signal: HealthSignal) -> datetime:
    """When we learnt of it: our clock at receipt, except an inbound message's own send time."""
    if isinstance(signal, InboundMessage):
        return signal.sent_at
    return signal.observed_at
