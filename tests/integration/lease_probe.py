"""Who holds a part's lease in `shard_leases`, read the way an operator would."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.contract.subjects import Bucket, presence
from julia_chips.jetstream.streams import ensure_buckets

# A TTL far above the 2-second takeover, so a test tells a takeover by proof of death from
# one by expiry (the suite's LEASE_TTL is 2 s, for speed).
LONG_TTL = 10.0


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


async def lease_bucket_with_ttl(js: JetStreamContext, ttl: float) -> None:
    """`shard_leases` made again with `ttl` (tests marked `own_nats_server` only: it would
    pull the bucket from under the others on a shared server)."""
    await js.delete_key_value(Bucket.SHARD_LEASES)
    await ensure_buckets(js, replicas=1, lease_ttl=ttl)


async def lease_holders(js: JetStreamContext, keys: list[str]) -> dict[str, str]:
    """Who holds each of `keys` (the keys nobody holds are left out)."""
    found = {key: await holder_of(js, key) for key in keys}
    return {key: holder for key, holder in found.items() if holder is not None}


async def until_present(nc: NATS, holder: str, timeout: float) -> None:
    """Until a process subscribes as `holder` (jetstream/leases/presence.py): it is connected
    and may take leases over, so a test can kill the holder it stands by for."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await nc.request(presence(holder), b"", timeout=0.2)
            except NoRespondersError:
                await asyncio.sleep(0.05)
                continue
            except TimeoutError:  # subscribed, and silent: present
                return
