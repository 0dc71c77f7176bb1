"""Old event versions are upcast on read; a stored event is never rewritten.

Each upcaster turns the JSON object of `(type, version)` into the shape of `version + 1`.
"""

from __future__ import annotations

from collections.abc import Callable
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
