"""The message ledger on `msg.evt.<chip_id>`: every outbound send, attempted then settled.

`SendAttempted` is stored *before* the gateway call and one outcome after it. An attempt
found without an outcome (the sender crashed in between) becomes `SendUnknown` and is never
sent again: a doctor messaged twice is worse than one message held for review.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, cast

import msgspec


class MessageEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    version: ClassVar[int] = 1  # the `Julia-Event-Version` header (contract/codec.py)
    event_id: str  # `<attempt_id>:<outcome>`, also the Nats-Msg-Id
    chip_id: str
    attempt_id: str  # the SendRequest's command_id: one attempt per request, ever
    occurred_at: datetime


class SendAttempted(MessageEvent, frozen=True, kw_only=True, tag="SendAttempted"):
    doctor_id: str
    kind: str  # reply | prospecting: prospecting counts against the doctor's weekly cap
    consented: bool


class SendDispatched(MessageEvent, frozen=True, kw_only=True, tag="SendDispatched"):
    message_id: str  # the gateway's id, to match delivery receipts


class SendFailed(MessageEvent, frozen=True, kw_only=True, tag="SendFailed"):
    reason: str  # the gateway said no before anything left: safe to know it was not sent


class SendUnknown(MessageEvent, frozen=True, kw_only=True, tag="SendUnknown"):
    reason: str  # why the outcome is unknown; held for a person to review, never re-sent


class Verdict(StrEnum):
    """What an operator found out about a `SendUnknown`."""

    DELIVERED = "delivered"  # it left after all: counted as dispatched
    NOT_SENT = "not_sent"  # it never left: counted as failed; a new request may send it


class UnknownSendSettled(MessageEvent, frozen=True, kw_only=True, tag="UnknownSendSettled"):
    """An operator settled a `SendUnknown` (`operations/unknown_sends.py`); the latest
    outcome wins, so the attempt reads as dispatched or failed from here on."""

    verdict: Verdict
    note: str | None = None


class Delivered(MessageEvent, frozen=True, kw_only=True, tag="Delivered"):
    message_id: str


class Read(MessageEvent, frozen=True, kw_only=True, tag="Read"):
    message_id: str


class NotDelivered(MessageEvent, frozen=True, kw_only=True, tag="NotDelivered"):
    """The gateway took the message but later reported it undelivered (a receipt, not an
    outcome: the attempt stays dispatched and is never re-sent)."""

    message_id: str
    reason: str


class Replied(MessageEvent, frozen=True, kw_only=True, tag="Replied"):
    message_id: str | None = None


AnyMessageEvent = (
    SendAttempted | SendDispatched | SendFailed | SendUnknown | Delivered | Read | NotDelivered
    | Replied | UnknownSendSettled
)
OUTCOMES = (SendDispatched, SendFailed, SendUnknown)
_DECODER = msgspec.json.Decoder(AnyMessageEvent)


def decode_message_event(data: bytes) -> AnyMessageEvent:
    return cast(AnyMessageEvent, _DECODER.decode(data))
