"""WhatsApp Cloud API webhook bodies become the observations Evolution's give, or a clear
rejection; the signature and the subscription handshake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from julia_chips.contract.observations import InboundMessage, MessageStatus
from julia_chips.gateways.cloud_api.signature import (
    SignatureInvalid,
    challenge_answer,
    check_signature,
    sign,
)
from julia_chips.gateways.cloud_api.webhook import decode_cloud_api
from julia_chips.ingest.deriver import derive
from julia_chips.ingest.outcomes import WebhookRejected

FIXTURES = Path(__file__).parent.parent / "fixtures"
AT = datetime(2025, 11, 27, 12, 30, tzinfo=UTC)  # the fixtures' first timestamp


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_doctor_messages_become_inbound_messages_and_system_ones_are_skipped() -> None:
    seen = decode_cloud_api(fixture("cloud_api_messages_text.json"))
    assert seen.number_id == "100000000000001"
    chip = {"instance": "100000000000001", "chip_phone": "+5511930000001"}
    assert seen.facts == (
        InboundMessage(message_id="wamid.HBgNNTUxMTg3NjU0MzIxFQIAEhgg",
                       from_phone="+5511987654321", text="PARAR", sent_at=AT, **chip),
        InboundMessage(message_id="wamid.HBgNNTUxMTg3NjU0MzIxFQIAEhgh",
                       from_phone="+5511987654321", text="",  # an image: a reply, no text
                       sent_at=AT + timedelta(seconds=1), **chip))
    # Every stamp is checked by the edge, the skipped system message's too.
    assert [path for path, _ in seen.stamps] == [
        f"$.entry[0].changes[0].value.messages[{n}].timestamp" for n in range(3)]


def test_statuses_map_onto_baileys_names_and_unknown_ones_are_skipped() -> None:
    seen = decode_cloud_api(fixture("cloud_api_statuses.json"))
    assert [(f.message_id, f.status) for f in seen.facts if isinstance(f, MessageStatus)] == [
        ("wamid.A", "SERVER_ACK"), ("wamid.A", "DELIVERY_ACK"), ("wamid.A", "READ"),
        ("wamid.B", "ERROR")]
    first = seen.facts[0]
    assert isinstance(first, MessageStatus)
    assert (first.instance, first.chip_phone, first.remote_phone, first.observed_at) == (
        "100000000000002", "+15550783881", "+5511987654321", AT)
    assert len(seen.stamps) == 5


def test_other_fields_carry_nothing_we_file() -> None:
    seen = decode_cloud_api(fixture("cloud_api_account_update.json"))
    assert (seen.number_id, seen.facts, seen.stamps) == (None, (), ())


def test_the_deriver_stores_every_fact_of_a_body() -> None:
    facts = derive("gw.in.cloud_api.100000000000002", fixture("cloud_api_statuses.json"), AT)
    assert len(facts) == 4
    assert derive("gw.in.cloud_api.none", fixture("cloud_api_account_update.json"), AT) == ()


def _statuses(**status: Any) -> bytes:
    body = json.loads(fixture("cloud_api_statuses.json"))
    body["entry"][0]["changes"][0]["value"]["statuses"] = [
        {"id": "wamid.A", "status": "read", "timestamp": "1764246600",
         "recipient_id": "5511987654321"} | status]
    return json.dumps(body).encode()


@pytest.mark.parametrize(("status", "where"), [
    ({"timestamp": 1764246600}, "statuses[0].timestamp"),  # a number: Meta writes strings
    ({"timestamp": "12"}, "statuses[0].timestamp"),  # before 2009
    ({"timestamp": "999999999999"}, "statuses[0].timestamp"),  # past 5138
    ({"recipient_id": "not a phone"}, "statuses[0].recipient_id"),
    ({"id": ""}, "statuses[0].id"),
])
def test_a_bad_field_is_named_with_its_path(status: dict[str, Any], where: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        decode_cloud_api(_statuses(**status))
    assert f"$.entry[0].changes[0].value.{where}" in str(refused.value)


def test_a_body_without_metadata_or_entries_is_refused() -> None:
    for body in (b'{"object": "whatsapp_business_account"}',
                 b'{"object": "x", "entry": [{"id": "1", "changes": [{"field": "messages", '
                 b'"value": {"statuses": []}}]}]}', b"[", b""):
        with pytest.raises(WebhookRejected):
            decode_cloud_api(body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=20)
_SHAPED = st.fixed_dictionaries({
    "object": _JSON, "entry": st.lists(st.fixed_dictionaries({
        "id": _JSON, "changes": st.lists(st.fixed_dictionaries({
            "field": st.sampled_from(["messages", "account_update"]) | _JSON,
            "value": st.fixed_dictionaries({
                "metadata": st.fixed_dictionaries({
                    "display_phone_number": st.from_regex(r"\A[0-9]{1,15}\Z") | _JSON,
                    "phone_number_id": st.from_regex(r"\A[0-9]{1,20}\Z") | _JSON}) | _JSON,
                "messages": st.lists(st.fixed_dictionaries({
                    "from": st.from_regex(r"\A[0-9]{8,13}\Z") | _JSON,
                    "id": st.text(max_size=30) | _JSON,
                    "timestamp": st.from_regex(r"\A[0-9]{1,12}\Z") | _JSON,
                    "type": st.sampled_from(["text", "image", "system"]) | _JSON,
                    "text": st.fixed_dictionaries({"body": st.text()}) | _JSON}), max_size=3),
                "statuses": st.lists(st.fixed_dictionaries({
                    "id": st.text(max_size=30) | _JSON,
                    "status": st.sampled_from(["sent", "delivered", "read", "failed", "x"]),
                    "timestamp": st.from_regex(r"\A[0-9]{1,12}\Z") | _JSON,
                    "recipient_id": st.from_regex(r"\A[0-9]{8,13}\Z") | _JSON}), max_size=3),
            }) | _JSON}), max_size=3)}), max_size=3)})


@settings(max_examples=400, deadline=None)
@given(st.one_of(_SHAPED, _JSON).map(lambda v: json.dumps(v).encode())
       | st.binary(max_size=200))
def test_any_body_decodes_or_raises_only_its_own_rejection(body: bytes) -> None:
    try:
        seen = decode_cloud_api(body)
    except WebhookRejected:
        return
    for fact in seen.facts:
        assert fact.chip_phone is not None and fact.chip_phone.startswith("+")
    assert len(seen.stamps) >= len(seen.facts)


def test_only_the_app_secret_signs_a_body() -> None:
    body = fixture("cloud_api_statuses.json")
    check_signature("app-secret", sign("app-secret", body), body)
    for header in (None, "", "sha1=abc", sign("other", body), sign("app-secret", body + b" ")):
        with pytest.raises(SignatureInvalid):
            check_signature("app-secret", header, body)
    check_signature("app-secret", sign("app-secret", body).upper().replace("SHA256=", "sha256="),
                    body)  # Meta's hex in capitals still matches


def test_the_handshake_echoes_the_challenge_to_our_token_only() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "ours", "hub.challenge": "1158201444"}
    assert challenge_answer(ok, "ours") == "1158201444"
    assert challenge_answer(ok | {"hub.verify_token": "theirs"}, "ours") is None
    assert challenge_answer(ok | {"hub.mode": "unsubscribe"}, "ours") is None
    assert challenge_answer({"hub.mode": "subscribe", "hub.challenge": "1"}, "ours") is None
    assert challenge_answer(ok, None) is None  # no token configured: nobody subscribes us
