"""Partition leases in the KV bucket `shard_leases`: whoever holds `p<n>` consumes partition n.

The bucket's TTL is the lease TTL: a worker that stops renewing (killed, partitioned) loses
its leases when they expire, and another worker takes them over. Lease time is real time,
demo or not (`clock.py`): it is about processes, not chips.
"""

from __future__ import annotations

import math

from nats.js.kv import KeyValue

from julia_chips.jetstream.part_lease import LeaderLease


class PartitionLeases:
    """One `LeaderLease` per partition held (key `p<n>`), plus the liveness keys that size a
    worker's fair share."""

    def __init__(self, kv: KeyValue, worker_id: str) -> None:
        self._kv = kv
        self.worker_id = worker_id
        self._held: dict[int, LeaderLease] = {}

    async def claim(self, partition: int) -> bool:
        """Take a free partition; False when someone else holds it."""
        lease = LeaderLease(self._kv, f"p{partition}", self.worker_id)
        if not await lease.acquire():
            return False
        self._held[partition] = lease
        return True

    async def renew(self, partition: int) -> bool:
        """Extend a held lease; False (and forgotten) when it was lost meanwhile."""
        lease = self._held.get(partition)
        if lease is not None and await lease.renew():
            return True
        self._held.pop(partition, None)
        return False

    async def release(self, partition: int) -> None:
        lease = self._held.pop(partition, None)
        if lease is not None:
            await lease.release()

    async def heartbeat(self) -> None:
        """Say this worker is alive, so live workers can share the partitions fairly."""
        await self._kv.put(f"worker.{self.worker_id}", b"alive")

    async def fair_share(self, partitions: int) -> int:
        try:
            keys = await self._kv.keys()
        except Exception:  # no keys at all
            keys = []
        live = max(1, sum(1 for key in keys if key.startswith("worker.")))
        return math.ceil(partitions / live)
