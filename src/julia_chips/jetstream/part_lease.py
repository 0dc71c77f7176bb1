"""Singleton parts by KV lease: one key in `shard_leases` per part, taken by CAS.

The balancer, the projections, the observation deriver, the health monitor and the activator
must each run in one process at a time (the deriver rewinds a shared durable, the others
would double their work), yet `julia-chips run` may run on several hosts. Whoever holds the
part's key runs it; the others stand by. The bucket's TTL is the lease: a holder that stops
renewing (SIGKILL, partition) loses it when the key expires, and a standby creates it again.
Creation and renewal are compare-and-set, so two holders never both believe they took the
same revision. TTLs and renewals are real seconds, never the injected clock's: they are
about processes, not the domain, and the demo's accelerated clock must not expire them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Protocol

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from julia_chips.contract.subjects import Bucket

log = logging.getLogger(__name__)


class LeaderLease:
    """The lease on one part: `key` in `shard_leases`, its value the holder's name."""

    def __init__(self, kv: KeyValue, key: str, holder: str) -> None:
        self._kv = kv
        self.key = key
        self.holder = holder
        self._revision: int | None = None

    async def acquire(self) -> bool:
        try:
            self._revision = await self._kv.create(self.key, self.holder.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self) -> bool:
        """False (and no longer held) when the lease expired or someone else took it."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._kv.update(self.key, self.holder.encode(),
                                                   last=self._revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            self._revision = None
            return False
        return True

    async def release(self) -> None:
        revision, self._revision = self._revision, None
        if revision is not None:
            with contextlib.suppress(Exception):
                await self._kv.delete(self.key, last=revision)


async def part_lease(nc: NATS, key: str, holder: str | None = None) -> LeaderLease:
    """The lease on `key`, held in the name of this host and process unless told otherwise
    (so an operator reading the bucket sees who runs the part)."""
    kv = await nc.jetstream().key_value(Bucket.SHARD_LEASES)
    return LeaderLease(kv, key, holder or f"{socket.gethostname()}:{os.getpid()}")


class Part(Protocol):
    """A singleton part: `run` until `stop`. One instance per tenure: `stop` is final."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_while_holding(lease: LeaderLease, ttl: float, start_part: Callable[[], Part],
                            stopping: asyncio.Event) -> None:
    """Run a fresh part from `start_part` while `lease` is held, stand by while it is not.

    A standby tries the lease every `ttl / 4`. The holder renews every `ttl / 3` and stops
    its part the moment a renewal fails or takes longer than `ttl / 3`: a holder cut off
    from NATS stops about `2 * ttl / 3` after its last renewal, before its key expires and a
    standby starts another. The lease is released only once the part has ended. Runs until
    `stopping` is set; then the part stops and the lease is released, so a standby takes
    over at once instead of after the TTL. A part that fails gives the lease up and its
    failure is raised here, for the supervisor (`runtime.supervisor`) to log and restart.
    """
    while not stopping.is_set():
        if await _acquired(lease):
            log.info("%s holds lease %s: the part runs here", lease.holder, lease.key)
            try:
                await _hold(lease, ttl, start_part(), stopping)
            finally:
                await lease.release()  # only once the part ended: never two at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), ttl / 4)


async def _acquired(lease: LeaderLease) -> bool:
    try:
        return await lease.acquire()
    except (NatsError, TimeoutError) as err:  # NATS away: try again at the next poll
        log.warning("lease %s not taken (%r)", lease.key, err)
        return False


async def _hold(lease: LeaderLease, ttl: float, part: Part, stopping: asyncio.Event) -> None:
    running = asyncio.create_task(part.run())
    lost = asyncio.create_task(_renew_until_lost(lease, ttl))
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait((running, lost, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        stop.cancel()
        part.stop()
        await running  # a failure goes up, to the part's supervisor, once the lease is given up


async def _renew_until_lost(lease: LeaderLease, ttl: float) -> None:
    """Renew every `ttl / 3`; return when a renewal fails, is refused or takes too long."""
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            async with asyncio.timeout(ttl / 3):
                if await lease.renew():
                    continue
            log.warning("%s lost lease %s: stopping the part", lease.holder, lease.key)
        except (NatsError, TimeoutError) as err:
            log.warning("%s could not renew lease %s (%r): stopping the part", lease.holder,
                        lease.key, err)
        return
