"""Who holds a part's lease in `shard_leases`, read the way an operator would."""

from __future__ import annotations

import asyncio
import time

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.contract.subjects import Bucket


async def holder_of(js: JetStreamContext, key: str) -> str | None:
    kv = await js.key_value(Bucket.SHARD_LEASES)
    try:
        entry = await kv.get(key)
    except NotFoundError:  # never taken, released (deleted) or expired
        return None
    return entry.value.decode() if entry.value else None


async def until_holder(js: JetStreamContext, key: str, holder: str | None,
                       timeout: float) -> float:
    """Seconds until `holder` holds `key` (None: nobody does)."""
    started = time.monotonic()
    while await holder_of(js, key) != holder:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{holder} never held {key} (now {await holder_of(js, key)})")
        await asyncio.sleep(0.02)
    return time.monotonic() - started
