"""Old event versions are upcast on read; a stored event is never rewritten.

Each upcaster turns the JSON object of `(type, version)` into the shape of `version + 1`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]
Upcaster = Callable[[JsonObject], JsonObject]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that lifts `event_type` from `from_version` to the next one."""

    def register(func: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = func
        return func

    return register


def upcast(obj: JsonObject, event_type: str, version: int, current: int) -> JsonObject:
    """Apply the registered upcasters from `version` up to `current`, in order."""
    for step in range(version, current):
        try:
            obj = UPCASTERS[(event_type, step)](obj)
        except KeyError:
            raise LookupError(f"no upcaster for {event_type} v{step}") from None
    return obj


@upcaster("TrafficObserved", 1)
def _traffic_v1_to_v2(obj: JsonObject) -> JsonObject:
    """v1 counted replies as `replies` and did not count inbound messages."""
    lifted = {k: v for k, v in obj.items() if k != "replies"}
    lifted["replied"] = obj.get("replies", 0)
    lifted.setdefault("received", 0)
    return lifted


@upcaster("Cooled", 1)
def _cooled_v1_to_v2(obj: JsonObject) -> JsonObject:
    """v1 stored `until` as the Cool command gave it, a zone or not; v2's always has one.

    A naive `until` is read as UTC, the zone of every time the system itself writes.
    """
    if obj.get("until") is None:
        return obj
    return {**obj, "until": _naive_as_utc(obj["until"])}


def _naive_as_utc(value: object) -> object:
    """An ISO 8601 string without a zone, as the same wall time in UTC; any other value is
    left for the decoder to accept or to refuse by its field name."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return value if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC).isoformat()


@upcaster("RequestQueued", 1)
def _queued_v1_to_v2(obj: JsonObject) -> JsonObject:
    """v1 kept `doctor_phone` and `text` in the clear; v2 seals them (`sealed`) and adds
    `phone_key`, all optional: a v1 object reads as a v2 with nothing sealed, whose phone
    key is taken from its phone on use. Only deleting the message erases such an entry
    (the erasure deletes it: docs/privacy.md)."""
    return obj
