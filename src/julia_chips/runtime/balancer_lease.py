"""The balancer's leader lease: the key `balancer` in `shard_leases`, taken by CAS.

The bucket's TTL is the lease: a leader that stops renewing (SIGKILL, partition) loses it
when the key expires and a standby creates it again. Creation and renewal are
compare-and-set, so two balancers never both believe they took the same lease revision.
"""

from __future__ import annotations

import contextlib

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from julia_chips.subjects import BALANCER_LEASE


class LeaderLease:
    def __init__(self, kv: KeyValue, holder: str) -> None:
        self._kv = kv
        self.holder = holder
        self._revision: int | None = None

    @property
    def held(self) -> bool:
        return self._revision is not None

    async def acquire(self) -> bool:
        try:
            self._revision = await self._kv.create(BALANCER_LEASE, self.holder.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self) -> bool:
        """False (and no longer held) when the lease expired or someone else took it."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._kv.update(BALANCER_LEASE, self.holder.encode(),
                                                   last=self._revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            self._revision = None
            return False
        return True

    async def release(self) -> None:
        revision, self._revision = self._revision, None
        if revision is not None:
            with contextlib.suppress(Exception):
                await self._kv.delete(BALANCER_LEASE, last=revision)
