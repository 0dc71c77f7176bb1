"""Wire format: headers, the upcasts of old event versions, and schemas kept in step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from julia_chips.contract.chip import Cooled, TrafficObserved
from julia_chips.contract.codec import decode_event, encode_event, event_headers
from julia_chips.contract.messages import SendFailed
from julia_chips.contract.route import DoctorOptedOut
from julia_chips.contract.schemas import (
    EVENTS_DOC,
    SCHEMA_FILES,
    render_events_doc,
    render_schemas,
)
from julia_chips.contract.upcasting import upcast

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_event_carries_type_and_version_headers() -> None:
    event = TrafficObserved(event_id="e", chip_id="c", command_id="k",
                            occurred_at=datetime(2026, 1, 1, tzinfo=UTC), sent=2)
    assert event_headers(event) == {"Julia-Event-Type": "TrafficObserved",
                                    "Julia-Event-Version": "2"}
    assert decode_event(encode_event(event), event_headers(event)) == event


def test_route_and_ledger_events_take_their_version_from_the_codec_too() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    opted_out = DoctorOptedOut(event_id="e", doctor_id="d", command_id="k", occurred_at=at,
                               source="whatsapp")
    failed = SendFailed(event_id="f", chip_id="c", attempt_id="a", occurred_at=at,
                        reason="not on WhatsApp")
    assert event_headers(opted_out) == {"Julia-Event-Type": "DoctorOptedOut",
                                        "Julia-Event-Version": "1"}
    assert event_headers(failed) == {"Julia-Event-Type": "SendFailed",
                                     "Julia-Event-Version": "1"}


def test_v1_traffic_observed_is_upcast_on_read() -> None:
    """v1 named replies `replies` and had no `received`; the stored bytes stay as they are."""
    stored = (b'{"type":"TrafficObserved","event_id":"e","chip_id":"c","command_id":"k",'
              b'"occurred_at":"2026-01-01T00:00:00Z","sent":9,"delivered":8,"read":5,'
              b'"replies":3,"failed":1}')
    event = decode_event(stored, {"Julia-Event-Type": "TrafficObserved", "Julia-Event-Version": "1"})
    assert isinstance(event, TrafficObserved)
    assert (event.sent, event.replied, event.received, event.failed) == (9, 3, 0, 1)


def _stored_v1_cooled(until: str | None) -> bytes:
    """A `Cooled` as v1 wrote it: `until` exactly as the `Cool` command had it."""
    return msgspec.json.encode({
        "type": "Cooled", "event_id": "e", "chip_id": "c", "command_id": "k",
        "occurred_at": "2026-01-01T00:00:00Z", "reason": "r", "until": until,
        "previous_status": "warming", "cool_streak": 1})


V1 = {"Julia-Event-Type": "Cooled", "Julia-Event-Version": "1"}


def test_v1_cooled_with_a_naive_until_is_read_as_utc() -> None:
    event = decode_event(_stored_v1_cooled("2026-01-01T06:30:00"), V1)
    assert isinstance(event, Cooled)
    assert event.until == datetime(2026, 1, 1, 6, 30, tzinfo=UTC)
    assert event.until.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("stored", "read"), [
    ("2026-01-01T06:30:00-03:00", datetime(2026, 1, 1, 9, 30, tzinfo=UTC)),
    (None, None),
])
def test_v1_cooled_with_a_zone_or_no_until_reads_as_it_was(
        stored: str | None, read: datetime | None) -> None:
    event = decode_event(_stored_v1_cooled(stored), V1)
    assert isinstance(event, Cooled) and event.until == read
    assert Cooled.version == 2


def test_missing_upcaster_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="no upcaster for Retired v1"):
        upcast({}, "Retired", 1, 2)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schemas_in_docs_match_the_code(name: str) -> None:
    on_disk = json.loads((SCHEMA_DIR / name).read_text())
    assert on_disk == json.loads(render_schemas()[name]), (
        "docs/schemas drifted from the code: run `python -m julia_chips.contract.schemas`")


def test_the_events_catalog_in_docs_matches_the_schemas() -> None:
    on_disk = (SCHEMA_DIR.parent / EVENTS_DOC).read_text()
    assert on_disk == render_events_doc(), (
        "docs/events.md drifted from the code: run `python -m julia_chips.contract.schemas`")
    for title in ("Chip events", "Route events", "Message ledger", "Fleet events",
                  "Activation steps"):
        assert f"## {title}" in on_disk
