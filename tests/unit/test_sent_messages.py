"""The feedback part's folds: which chip an observation is about (an Evolution instance or a
Cloud API number), and which send a doctor's reply answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from julia_chips.contract import chip as ev
from julia_chips.contract import messages as msg
from julia_chips.contract.observations import InboundMessage, MessageStatus
from julia_chips.ingest.gateway_chips import GatewayChips
from julia_chips.ingest.sent_messages import SentMessages

AT = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
DOCTOR = "+5511987654321"


def activated(chip_id: str, instance: str, phone: str | None) -> ev.Activated:
    return ev.Activated(event_id=f"{chip_id}:c:0", chip_id=chip_id, command_id="c",
                        occurred_at=AT, instance=instance, host="h", daily_cap=20,
                        phone_number=phone)


def status(message_id: str, *, instance: str = "100000000000001", phone: str = DOCTOR,
           chip_phone: str | None = "+5511987650001", kind: str = "DELIVERY_ACK"
           ) -> MessageStatus:
    return MessageStatus(instance=instance, message_id=message_id, remote_phone=phone,
                         status=kind, observed_at=AT, chip_phone=chip_phone)  # type: ignore[arg-type]


def inbound(phone: str = DOCTOR, chip_phone: str | None = "+5511987650001") -> InboundMessage:
    return InboundMessage(instance="100000000000001", message_id="wamid.IN", from_phone=phone,
                          text="Oi", sent_at=AT + timedelta(minutes=5), chip_phone=chip_phone)


def test_a_chip_is_found_by_its_instance_or_by_its_number_in_either_form() -> None:
    chips = GatewayChips()
    chips.fold(activated("evo", "inst-evo", None))
    chips.fold(activated("cloud", "inst-cloud", "+55 11 98765-0001"))
    assert chips.chip_of(status("m", instance="inst-evo", chip_phone=None)) == "evo"
    assert chips.chip_of(status("m")) == "cloud"
    assert chips.chip_of(status("m", chip_phone="551187650001")) == "cloud"  # eight digits
    # A number no Activated names is unknown, even when its id matches an instance name.
    assert chips.chip_of(status("m", instance="inst-evo", chip_phone="+5511999990000")) is None
    chips.fold(activated("again", "inst-again", "+5511987650001"))  # the number given again
    assert chips.chip_of(status("m")) == "again"


def dispatched(attempt: str, message_id: str, chip_id: str = "cloud") -> msg.SendDispatched:
    return msg.SendDispatched(event_id=f"{attempt}:dispatched", chip_id=chip_id,
                              attempt_id=attempt, occurred_at=AT, message_id=message_id)


def sent_messages() -> SentMessages:
    sent = SentMessages()
    sent.fold_chip(activated("cloud", "inst-cloud", "+5511987650001"))
    for attempt, message_id in (("a1", "wamid.1"), ("a2", "wamid.2")):
        sent.fold_ledger(dispatched(attempt, message_id))
    return sent


def test_a_reply_answers_the_newest_send_to_that_phone_whatever_the_receipts_order() -> None:
    sent = sent_messages()
    sent.fold_receipt(status("wamid.2", phone="551187654321"))  # Meta's eight-digit form
    sent.fold_receipt(status("wamid.1"))  # a late receipt of the older send
    (replied,) = sent.reply_events(inbound(), "cloud")
    assert (replied.attempt_id, replied.message_id, replied.event_id, replied.occurred_at) == (
        "a2", "wamid.2", "a2:replied", AT + timedelta(minutes=5))
    sent.fold_ledger(replied)
    assert sent.reply_events(inbound(), "cloud") == []  # once per attempt


def test_no_reply_is_filed_without_a_receipt_naming_the_phone_or_without_a_chip() -> None:
    sent = sent_messages()
    assert sent.reply_events(inbound(), "cloud") == []
    sent.fold_receipt(status("wamid.1"))
    assert sent.reply_events(inbound(), None) == []
    assert sent.reply_events(inbound(phone="+5521988887777"), "cloud") == []
    assert sent.reply_events(inbound(), "another-chip") == []
