"""Sealing under a doctor's key: what is sealed opens with that key only, and to nothing
once the key is gone; a queued send's wire form holds no phone or text in the clear."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER, event_headers
from julia_chips.privacy.sealing import new_key, open_sealed, seal

PHONE, TEXT = "+5511987654321", "Dra. Ana, o plantão de sábado"
AT = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _queued(**extra: object) -> rt.RequestQueued:
    return rt.RequestQueued(event_id="s1:queued", request_id="s1", doctor_id="d1",
                            command_id="s1", occurred_at=AT, doctor_phone=PHONE, text=TEXT,
                            kind="reply", consented=False, reason="no capacity",
                            phone_key="k" * 32, **extra)  # type: ignore[arg-type]


def test_sealed_bytes_open_with_their_key_only() -> None:
    key = new_key()
    sealed = seal(b"secret", "d1", key)
    assert open_sealed(sealed, key) == b"secret"
    assert open_sealed(sealed, new_key()) is None
    assert open_sealed(sealed, None) is None  # erased
    moved = msgspec.structs.replace(sealed, key_id="d2")  # another doctor's label
    assert open_sealed(moved, key) is None
    assert seal(b"secret", "d1", key).nonce != sealed.nonce  # a fresh nonce each time


def test_a_queued_send_is_stored_without_its_phone_or_text() -> None:
    key = new_key()
    wire = _queued().sealed_with(key)
    data = ENCODER.encode(wire)
    assert PHONE[1:] not in data.decode() and "plantão" not in data.decode()
    assert wire.doctor_phone is None and wire.text is None and wire.sealed is not None
    stored = rt.decode_route_event(data, event_headers(wire))
    assert isinstance(stored, rt.RequestQueued) and stored.sealed is not None
    opened = stored.opened_with(key)
    assert (opened.doctor_phone, opened.text, opened.erased) == (PHONE, TEXT, False)
    gone = stored.opened_with(None)
    assert (gone.doctor_phone, gone.text, gone.erased) == (None, None, True)


def test_clear_version_1_history_still_reads() -> None:
    v1 = {"type": "RequestQueued", "event_id": "s1:queued", "request_id": "s1",
          "doctor_id": "d1", "command_id": "s1", "occurred_at": AT.isoformat(),
          "doctor_phone": PHONE, "text": TEXT, "kind": "reply", "consented": False,
          "reason": "no capacity"}
    headers = {"Julia-Event-Type": "RequestQueued", "Julia-Event-Version": "1"}
    event = rt.decode_route_event(msgspec.json.encode(v1), headers)
    assert isinstance(event, rt.RequestQueued)
    assert event.opened_with(None).doctor_phone == PHONE  # nothing sealed: nothing to shred
    assert event_headers(_queued())["Julia-Event-Version"] == "2"
