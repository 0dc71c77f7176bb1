"""Wire format: headers, the upcast of an old event version, and schemas kept in step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from julia_chips.events.chip import TrafficObserved
from julia_chips.events.codec import decode_event, encode_event, event_headers
from julia_chips.events.schemas import SCHEMA_FILES, render_schemas
from julia_chips.events.upcasting import upcast

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_event_carries_type_and_version_headers() -> None:
    event = TrafficObserved(event_id="e", chip_id="c", command_id="k",
                            occurred_at=datetime(2026, 1, 1, tzinfo=UTC), sent=2)
    assert event_headers(event) == {"Julia-Event-Type": "TrafficObserved",
                                    "Julia-Event-Version": "2"}
    assert decode_event(encode_event(event), event_headers(event)) == event


def test_v1_traffic_observed_is_upcast_on_read() -> None:
    """v1 named replies `replies` and had no `received`; the stored bytes stay as they are."""
    stored = (b'{"type":"TrafficObserved","event_id":"e","chip_id":"c","command_id":"k",'
              b'"occurred_at":"2026-01-01T00:00:00Z","sent":9,"delivered":8,"read":5,'
              b'"replies":3,"failed":1}')
    event = decode_event(stored, {"Julia-Event-Type": "TrafficObserved", "Julia-Event-Version": "1"})
    assert isinstance(event, TrafficObserved)
    assert (event.sent, event.replied, event.received, event.failed) == (9, 3, 0, 1)


def test_missing_upcaster_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="no upcaster for Cooled v1"):
        upcast({}, "Cooled", 1, 2)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schemas_in_docs_match_the_code(name: str) -> None:
    on_disk = json.loads((SCHEMA_DIR / name).read_text())
    assert on_disk == json.loads(render_schemas()[name]), (
        "docs/schemas drifted from the code: run `python -m julia_chips.events.schemas`")
