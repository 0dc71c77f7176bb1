"""Evolution v2 webhook bodies become typed observations, or a clear rejection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from julia_chips.contract.observations import ConnectionUpdate, InboundMessage, MessageStatus
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.ingest.outcomes import Ignored, WebhookRejected

FIXTURES = Path(__file__).parent.parent / "fixtures"
RECEIVED = datetime(2025, 11, 27, 12, 30, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_connection_open() -> None:
    seen = decode_evolution(fixture("evolution_connection_open.json"), received_at=RECEIVED)
    assert seen == ConnectionUpdate(
        instance="chip-0001", state="open", status_reason=200, observed_at=RECEIVED
    )


def test_terminal_close_keeps_the_reason_code() -> None:
    seen = decode_evolution(fixture("evolution_connection_close_403.json"), received_at=RECEIVED)
    assert isinstance(seen, ConnectionUpdate)
    assert (seen.state, seen.status_reason) == ("close", 403)


def test_qr_limit_refused() -> None:
    seen = decode_evolution(fixture("evolution_connection_refused.json"), received_at=RECEIVED)
    assert isinstance(seen, ConnectionUpdate)
    assert (seen.instance, seen.state, seen.status_reason) == ("chip-0003", "refused", 428)


def test_inbound_message() -> None:
    seen = decode_evolution(fixture("evolution_messages_upsert.json"), received_at=RECEIVED)
    assert seen == InboundMessage(
        instance="chip-0001",
        message_id="3A5F0C2B9E1D",
        from_phone="+5511999999999",
        text="Oi, esse plantão ainda está aberto?",
        sent_at=datetime(2024, 11, 27, 9, 33, 20, tzinfo=UTC),
    )


def test_inbound_from_lid_uses_the_phone_alternate() -> None:
    seen = decode_evolution(fixture("evolution_messages_upsert_lid.json"), received_at=RECEIVED)
    assert isinstance(seen, InboundMessage)
    assert (seen.from_phone, seen.text) == ("+5521988776655", "PARAR")


def test_extended_text_is_read() -> None:
    body = json.loads(fixture("evolution_messages_upsert.json"))
    body["data"]["message"] = {"extendedTextMessage": {"text": "veja https://x.y"}}
    seen = decode_evolution(json.dumps(body).encode(), received_at=RECEIVED)
    assert isinstance(seen, InboundMessage)
    assert seen.text == "veja https://x.y"


def test_group_message_is_ignored() -> None:
    seen = decode_evolution(fixture("evolution_messages_upsert_group.json"), received_at=RECEIVED)
    assert seen == Ignored(
        source="evolution", event="messages.upsert", reason="not a person's number"
    )


def test_our_own_message_echo_is_ignored() -> None:
    body = json.loads(fixture("evolution_messages_upsert.json"))
    body["data"]["key"]["fromMe"] = True
    seen = decode_evolution(json.dumps(body).encode(), received_at=RECEIVED)
    assert isinstance(seen, Ignored)
    assert seen.reason == "our own message"


def test_read_receipt() -> None:
    seen = decode_evolution(fixture("evolution_messages_update_read.json"), received_at=RECEIVED)
    assert seen == MessageStatus(
        instance="chip-0001",
        message_id="3EB0A1B2C3D4E5F6",
        remote_phone="+5511999999999",
        status="READ",
        observed_at=RECEIVED,
    )


def test_unused_event_is_ignored_not_rejected() -> None:
    seen = decode_evolution(fixture("evolution_qrcode_updated.json"), received_at=RECEIVED)
    assert seen == Ignored(source="evolution", event="qrcode.updated", reason="event not used")


def test_wrong_type_names_the_field() -> None:
    body = json.loads(fixture("evolution_connection_open.json"))
    body["data"]["statusReason"] = "two hundred"
    with pytest.raises(WebhookRejected, match=r"\$\.data\.statusReason"):
        decode_evolution(json.dumps(body).encode(), received_at=RECEIVED)


def test_unknown_state_is_rejected() -> None:
    body = json.loads(fixture("evolution_connection_open.json"))
    body["data"]["state"] = "exploded"
    with pytest.raises(WebhookRejected, match=r"\$\.data\.state"):
        decode_evolution(json.dumps(body).encode(), received_at=RECEIVED)


def test_missing_message_id_is_rejected() -> None:
    body = json.loads(fixture("evolution_messages_upsert.json"))
    del body["data"]["key"]["id"]
    with pytest.raises(WebhookRejected, match="id"):
        decode_evolution(json.dumps(body).encode(), received_at=RECEIVED)


def test_missing_instance_is_rejected() -> None:
    with pytest.raises(WebhookRejected, match="instance"):
        decode_evolution(b'{"event": "connection.update"}', received_at=RECEIVED)


def test_not_json_is_rejected() -> None:
    with pytest.raises(WebhookRejected, match="evolution webhook"):
        decode_evolution(b"<html>", received_at=RECEIVED)


def upsert_at(message_timestamp: int) -> bytes:
    body = json.loads(fixture("evolution_messages_upsert.json"))
    body["data"]["messageTimestamp"] = message_timestamp
    return json.dumps(body).encode()


@pytest.mark.parametrize("stamp", [10**20, 99_999_999_999 + 1, -1, 0])
def test_a_message_timestamp_out_of_range_is_rejected_naming_it(stamp: int) -> None:
    """Not an OverflowError: that was a 500 at the edge and a deriver stuck on the body."""
    with pytest.raises(WebhookRejected, match=r"\$\.data\.messageTimestamp"):
        decode_evolution(upsert_at(stamp), received_at=RECEIVED)


def test_a_message_dated_after_its_receipt_is_rejected() -> None:
    later = int((RECEIVED + timedelta(minutes=2)).timestamp())
    with pytest.raises(WebhookRejected, match=r"later than its receipt - at `\$\.data\."):
        decode_evolution(upsert_at(later), received_at=RECEIVED)
    seen = decode_evolution(upsert_at(int(RECEIVED.timestamp())), received_at=RECEIVED)
    assert isinstance(seen, InboundMessage) and seen.sent_at == RECEIVED
