"""What the observation deriver makes of one stored raw webhook: the decoders' fact, nothing
for an ignored event, or a reason to dead-letter it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from julia_chips.contract.observations import SmsReceived
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.ingest.deriver import RawUnreadable, derive

FIXTURES = Path(__file__).parent.parent / "fixtures"
RECEIVED = datetime(2025, 11, 27, 12, 30, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", ["evolution_connection_open.json",
                                  "evolution_connection_close_403.json",
                                  "evolution_messages_upsert.json",
                                  "evolution_messages_update_read.json"])
def test_an_evolution_body_yields_what_the_edge_decoded(name: str) -> None:
    body = fixture(name)
    assert derive("gw.in.evolution.chip-0001", body, RECEIVED) == (decode_evolution(
        body, received_at=RECEIVED),)


def test_a_salvy_sms_yields_the_sms() -> None:
    (seen,) = derive("gw.in.salvy.pa_01JDQ6ZK2M", fixture("salvy_sms_received_v3.json"),
                     RECEIVED)
    assert isinstance(seen, SmsReceived) and seen.code == "482913"


@pytest.mark.parametrize(("subject", "name"), [
    ("gw.in.evolution.chip-0001", "evolution_qrcode_updated.json"),
    ("gw.in.salvy.none", "salvy_other_event.json"),
    ("gw.in.cloud_api.none", "cloud_api_account_update.json"),
])
def test_an_ignored_event_yields_nothing(subject: str, name: str) -> None:
    assert derive(subject, fixture(name), RECEIVED) == ()


@pytest.mark.parametrize(("subject", "body", "reason"), [
    ("gw.in.evolution.chip-1", b'{"event": "connection.update"', "truncated"),
    ("gw.in.evolution.chip-1", b'{"event": "connection.update", "instance": "chip-1", '
                               b'"data": {"state": 3}}', "$.data"),
    ("gw.in.evolution.a", b'{"event": "connection.update", "instance": "a.b", '
                          b'"data": {"instance": "a.b", "state": "open"}}', "subject token"),
    ("gw.in.cloud_api.1", b'{"object": "whatsapp_business_account"}', "entry"),
    ("gw.in.telegram.x", b"{}", "no decoder"),
    ("gw.in", b"{}", "no decoder"),
])
def test_a_body_the_decoders_refuse_says_why(subject: str, body: bytes, reason: str) -> None:
    with pytest.raises(RawUnreadable) as refused:
        derive(subject, body, RECEIVED)
    assert reason.lower() in str(refused.value).lower()
