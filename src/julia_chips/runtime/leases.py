"""Partition leases in the KV bucket `shard_leases`: whoever holds `p<n>` consumes partition n.

The bucket's TTL is the lease TTL: a worker that stops renewing (killed, partitioned) loses
its leases when they expire, and another worker takes them over.
"""

from __future__ import annotations

import contextlib
import math

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


class PartitionLeases:
    def __init__(self, kv: KeyValue, worker_id: str) -> None:
        self._kv = kv
        self.worker_id = worker_id
        self._revisions: dict[int, int] = {}

    @property
    def held(self) -> set[int]:
        return set(self._revisions)

    async def claim(self, partition: int) -> bool:
        """Take a free partition; False when someone else holds it."""
        try:
            self._revisions[partition] = await self._kv.create(f"p{partition}",
                                                               self.worker_id.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self, partition: int) -> bool:
        """Extend a held lease; False (and forgotten) when it was lost meanwhile."""
        try:
            self._revisions[partition] = await self._kv.update(
                f"p{partition}", self.worker_id.encode(), last=self._revisions[partition])
        except (KeyWrongLastSequenceError, KeyNotFoundError, KeyError):
            self._revisions.pop(partition, None)
            return False
        return True

    async def release(self, partition: int) -> None:
        revision = self._revisions.pop(partition, None)
        if revision is not None:
            with contextlib.suppress(Exception):
                await self._kv.delete(f"p{partition}", last=revision)

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
