"""Chip events appended as bytes, as an older version or another writer stored them.

Our codec would write today's shape; these helpers write exactly the JSON and headers given,
so a test can check how every reader takes what is already in the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from nats.js.api import Header
from nats.js.client import JetStreamContext

from julia_chips.clock import Clock
from julia_chips.contract.subjects import JuliaHeader, chip_events
from tests.integration.warm_fleet import events_of


def naive(when: datetime) -> str:
    """`when` as a sender that forgets the zone writes it."""
    return when.replace(tzinfo=None).isoformat()


async def store_raw_event(js: JetStreamContext, body: dict[str, Any], version: int) -> None:
    await js.publish(chip_events(body["chip_id"]), msgspec.json.encode(body), headers={
        JuliaHeader.EVENT_TYPE: body["type"], JuliaHeader.EVENT_VERSION: str(version),
        Header.MSG_ID: body["event_id"]})


async def store_old_cooled(js: JetStreamContext, chip: str, clock: Clock, until: str,
                           version: int = 1) -> None:
    """A `Cooled` resting the chip (from warming) until `until`, stored as `version`."""
    await store_raw_event(js, {
        "type": "Cooled", "event_id": f"{chip}:old-cool:0", "chip_id": chip,
        "command_id": "old-cool", "occurred_at": clock.now().isoformat(), "reason": "r",
        "until": until, "previous_status": "warming", "cool_streak": 1}, version)


async def kinds(js: JetStreamContext, chip: str) -> list[str]:
    return [type(e).__name__ for e in await events_of(js, chip)]


def banned(js: JetStreamContext, chip: str) -> Callable[[], Awaitable[bool]]:
    """A predicate for `health_rig.until`: the chip has a `Banned` event."""
    async def check() -> bool:
        return "Banned" in await kinds(js, chip)
    return check
