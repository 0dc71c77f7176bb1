"""What the doctor-feedback part must know to file what doctors send back: which chip an
instance is, and which attempt a gateway message id answers.

Both are folds: the chips' instances from CHIP_EVENTS (`Activated`), the sends from the
message ledger (`SendDispatched.message_id`), so a restarted part rebuilds them by replaying
the streams. `receipt_events` turns one receipt into the ledger events it adds, pure and
idempotent: a receipt seen again (a webhook replayed, a redelivery) adds nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec

from julia_chips.contract import messages as msg
from julia_chips.contract.chip import Activated, AnyChipEvent
from julia_chips.contract.observations import MessageStatus

# What each receipt status says happened; READ implies the message was delivered first.
_RECEIPTS: dict[str, tuple[type[msg.MessageEvent], ...]] = {
    "DELIVERY_ACK": (msg.Delivered,), "READ": (msg.Delivered, msg.Read),
    "PLAYED": (msg.Delivered, msg.Read), "ERROR": (msg.NotDelivered,)}
_SUFFIX = {msg.Delivered: "delivered", msg.Read: "read", msg.NotDelivered: "not-delivered"}


class SentMessage(msgspec.Struct, kw_only=True):
    chip_id: str
    attempt_id: str
    filed: set[str] = msgspec.field(default_factory=set)  # receipt suffixes in the ledger


class SentMessages:
    """Written by `fold_chip` and `fold_ledger` only."""

    def __init__(self) -> None:
        self._chips: dict[str, str] = {}  # gateway instance -> chip id
        self._sent: dict[str, SentMessage] = {}  # gateway message id -> its attempt
        self._attempts: dict[str, str] = {}  # attempt id -> gateway message id

    def chip_of(self, instance: str) -> str | None:
        return self._chips.get(instance)

    def fold_chip(self, event: AnyChipEvent) -> None:
        if isinstance(event, Activated):
            self._chips[event.instance] = event.chip_id

    def fold_ledger(self, event: msg.AnyMessageEvent) -> None:
        match event:
            case msg.SendDispatched():
                self._sent[event.message_id] = SentMessage(chip_id=event.chip_id,
                                                           attempt_id=event.attempt_id)
                self._attempts[event.attempt_id] = event.message_id
            case msg.Delivered() | msg.Read() | msg.NotDelivered():
                sent = self._sent.get(event.message_id)
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
