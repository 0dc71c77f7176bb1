"""Salvy `sms.received` bodies become SmsReceived with the WhatsApp code, if any."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from julia_chips.contract.observations import SmsReceived
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.ingest.outcomes import Ignored, WebhookRejected

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_v3_sms_with_detection() -> None:
    seen = decode_salvy(fixture("salvy_sms_received_v3.json"))
    assert isinstance(seen, SmsReceived)
    assert seen.sms_id == "sms_01JDQ7W3K8"
    assert seen.phone_account_id == "pa_01JDQ6ZK2M"
    assert seen.destination_phone == "+5511987654321"
    assert seen.origin_phone == "+15550100"
    assert seen.code == "482913"
    assert seen.received_at == datetime(2025, 11, 27, 12, 0, tzinfo=UTC)


def test_legacy_account_field_and_code_from_text() -> None:
    seen = decode_salvy(fixture("salvy_sms_received_legacy.json"))
    assert isinstance(seen, SmsReceived)
    assert seen.phone_account_id == "vpa_7f3e2d1c"
    assert seen.code == "731026"


def test_spam_carries_no_code() -> None:
    seen = decode_salvy(fixture("salvy_sms_received_spam.json"))
    assert isinstance(seen, SmsReceived)
    assert seen.code is None
    assert "550123" in seen.text


def test_other_event_is_ignored() -> None:
    assert decode_salvy(fixture("salvy_other_event.json")) == Ignored(
        source="salvy", event="phone-account.canceled", reason="event not used"
    )


def test_no_account_id_is_rejected() -> None:
    body = json.loads(fixture("salvy_sms_received_v3.json"))
    del body["data"]["phoneAccountId"]
    with pytest.raises(WebhookRejected, match="phoneAccountId"):
        decode_salvy(json.dumps(body).encode())


def test_bad_timestamp_names_the_field() -> None:
    body = json.loads(fixture("salvy_sms_received_v3.json"))
    body["data"]["receivedAt"] = "yesterday"
    with pytest.raises(WebhookRejected, match=r"\$\.data\.receivedAt"):
        decode_salvy(json.dumps(body).encode())


def test_missing_message_is_rejected() -> None:
    body = json.loads(fixture("salvy_sms_received_v3.json"))
    del body["data"]["message"]
    with pytest.raises(WebhookRejected, match="message"):
        decode_salvy(json.dumps(body).encode())
