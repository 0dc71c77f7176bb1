"""What a webhook decoder answers besides a fact: an event ignored on purpose, or a rejection.

The facts themselves (connection updates, receipts, inbound messages, SMS) are wire types in
contract/observations.py, so the models can fold them without importing this adapter layer.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from julia_chips.contract.observations import (
    ConnectionUpdate,
    InboundMessage,
    MessageStatus,
    SmsReceived,
)


class Ignored(msgspec.Struct, frozen=True, kw_only=True):
    """A well-formed webhook we deliberately do not act on (group chats, our own echoes, …).

    Returned rather than raised so the HTTP edge can still answer 200: the sender did nothing
    wrong, and an error would only make it retry.
    """

    source: Literal["evolution", "salvy", "cloud_api"]
    event: str
    reason: str


EvolutionObservation = ConnectionUpdate | InboundMessage | MessageStatus | Ignored
SalvyObservation = SmsReceived | Ignored


class WebhookRejected(ValueError):
    """A webhook body that does not match the documented shape; the message names the field."""
