"""What the doctor-feedback part must know to file what doctors send back: which chip an
observation is about, which attempt a gateway message id answers, and which send to a
phone on a chip was the last.

All are folds: the chips from CHIP_EVENTS (`Activated`, `gateway_chips.py`), the sends from
the message ledger (`SendDispatched.message_id`), the phone each went to from its receipts
(the ledger keeps no phones: they are personal data), so a restarted part rebuilds them by
replaying the streams. `receipt_events` turns one receipt into the ledger events it adds,
`reply_events` one inbound message into the `Replied` of the last send to that phone on that
chip; both pure and idempotent: a fact seen again (a webhook replayed, a redelivery) adds
nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec

from julia_chips.contract import messages as msg
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.observations import InboundMessage, MessageStatus
from julia_chips.ingest.gateway_chips import GatewayChips
from julia_chips.phones import normalise_phone

# What each receipt status says happened; READ implies the message was delivered first.
_RECEIPTS: dict[str, tuple[type[msg.MessageEvent], ...]] = {
    "DELIVERY_ACK": (msg.Delivered,), "READ": (msg.Delivered, msg.Read),
    "PLAYED": (msg.Delivered, msg.Read), "ERROR": (msg.NotDelivered,)}
_SUFFIX = {msg.Delivered: "delivered", msg.Read: "read", msg.NotDelivered: "not-delivered",
           msg.Replied: "replied"}


class SentMessage(msgspec.Struct, kw_only=True):
    chip_id: str
    attempt_id: str
    order: int  # its place among the sends folded: the newest answers a reply
    filed: set[str] = msgspec.field(default_factory=set)  # receipt suffixes in the ledger


class SentMessages:
    """Written by `fold_chip` and `fold_ledger` only."""

    def __init__(self) -> None:
        self._chips = GatewayChips()
        self._sent: dict[str, SentMessage] = {}  # gateway message id -> its attempt
        self._attempts: dict[str, str] = {}  # attempt id -> gateway message id
        self._last_to: dict[tuple[str, str], str] = {}  # (chip, phone) -> last message id

    def chip_of(self, observation: InboundMessage | MessageStatus) -> str | None:
        return self._chips.chip_of(observation)

    def fold_chip(self, event: AnyChipEvent) -> None:
        self._chips.fold(event)

    def fold_receipt(self, receipt: MessageStatus) -> None:
        """Learn the phone a send of ours went to; the newest send to it on its chip is the
        one a reply from that phone answers, whatever order the receipts come in."""
        sent = self._sent.get(receipt.message_id)
        if sent is None:
            return
        key = (sent.chip_id, normalise_phone(receipt.remote_phone))
        last = self._sent.get(self._last_to.get(key, ""))
        if last is None or last.order <= sent.order:
            self._last_to[key] = receipt.message_id

    def fold_ledger(self, event: msg.AnyMessageEvent) -> None:
        match event:
            case msg.SendDispatched():
                self._sent[event.message_id] = SentMessage(
                    chip_id=event.chip_id, attempt_id=event.attempt_id, order=len(self._sent))
                self._attempts[event.attempt_id] = event.message_id
            case msg.Delivered() | msg.Read() | msg.NotDelivered() | msg.Replied():
                sent = self._sent.get(event.message_id or "")
                if sent is not None:
                    sent.filed.add(_SUFFIX[type(event)])

    def receipt_events(self, receipt: MessageStatus) -> list[msg.MessageEvent] | None:
        """The ledger events `receipt` adds, in order; None when no send of ours has that
        message id (yet: the receipt may have overtaken the `SendDispatched`)."""
        sent = self._sent.get(receipt.message_id)
        if sent is None:
            return None
        common: dict[str, Any] = {"chip_id": sent.chip_id, "attempt_id": sent.attempt_id,
                                  "message_id": receipt.message_id,
                                  "occurred_at": receipt.observed_at}
        events: list[msg.MessageEvent] = []
        for kind in _RECEIPTS.get(receipt.status, ()):
            suffix = _SUFFIX[kind]
            if suffix not in sent.filed:
                extra: dict[str, Any] = ({"reason": "gateway reported ERROR"}
                                         if kind is msg.NotDelivered else {})
                events.append(kind(event_id=f"{sent.attempt_id}:{suffix}", **common, **extra))
        return events

    def reply_events(self, inbound: InboundMessage, chip_id: str | None) -> list[msg.Replied]:
        """`Replied` on the last send to the phone on `chip_id`, unless it has one already;
        nothing when no receipt has yet said which of our sends went to that phone."""
        if chip_id is None:
            return []
        message_id = self._last_to.get((chip_id, normalise_phone(inbound.from_phone)), "")
        sent = self._sent.get(message_id)
        if sent is None or "replied" in sent.filed:
            return []
        return [msg.Replied(event_id=f"{sent.attempt_id}:replied", chip_id=sent.chip_id,
                            attempt_id=sent.attempt_id, message_id=message_id,
                            occurred_at=inbound.sent_at)]
