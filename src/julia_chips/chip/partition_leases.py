"""Partition leases in the KV bucket `shard_leases`: whoever holds `p<n>` consumes partition n.

The bucket's TTL is the lease TTL: a worker that stops renewing (partitioned, its socket
still open at the server) loses its leases when they expire. A worker whose connection is
proved gone (`jetstream/leases/`) loses them as soon as a standby sees them unrenewed.
Lease time is real time, demo or not (`clock.py`): it is about processes, not chips.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from julia_chips.jetstream.leases.board import LeaseBoard
from julia_chips.jetstream.part_lease import LeaderLease, take_if_free_or_dead

HEARTBEAT_PREFIX = "worker."


def partition_key(partition: int) -> str:
    return f"p{partition}"


class PartitionLeases:
    """One `LeaderLease` per partition held (key `p<n>`), plus the liveness keys
    (`worker.<id>`, the id as value) that size a worker's fair share."""

    def __init__(self, nc: NATS, kv: KeyValue, worker_id: str) -> None:
        self._nc = nc
        self._kv = kv
        self.worker_id = worker_id
        self._held: dict[int, LeaderLease] = {}

    async def claim(self, partition: int, board: LeaseBoard,
                    gone: Callable[[str], bool]) -> bool:
        """Take a partition that is free, or whose holder `gone` says is proved gone;
        False when someone else holds it."""
        lease = LeaderLease(self._nc, self._kv, partition_key(partition), self.worker_id)
        if not await take_if_free_or_dead(lease, board, gone):
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
        await self._kv.put(f"{HEARTBEAT_PREFIX}{self.worker_id}", self.worker_id.encode())

    async def bury(self, worker_id: str, board: LeaseBoard) -> None:
        """Delete the heartbeat of a worker proved gone (CAS on the revision seen), so every
        worker's fair share counts it out now rather than when the key expires."""
        key = f"{HEARTBEAT_PREFIX}{worker_id}"
        sighting = board.sighting(key)
        if sighting is None:
            return
        board.forget(key)  # even if the delete fails: a live worker's next heartbeat shows
        with contextlib.suppress(Exception):  # renewed meanwhile, or NATS away: it expires
            await self._kv.delete(key, last=sighting.revision)

    def fair_share(self, partitions: int, board: LeaseBoard, gone: set[str]) -> int:
        """Partitions per live worker: heartbeats not expired, less those proved gone."""
        live = {key.removeprefix(HEARTBEAT_PREFIX) for key in board.under(HEARTBEAT_PREFIX)}
        return math.ceil(partitions / len((live - gone) | {self.worker_id}))
