"""A worker: holds partition leases and runs a consumer for each partition it holds.

Every `ttl / 3` seconds it renews its leases (a lost one stops that consumer), releases
those whose consumer stopped (so the partition is started afresh, here or elsewhere), says
it is alive, and claims free partitions up to its fair share of the live workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.chip.partition import PartitionConsumer, PartitionSettings
from julia_chips.chip.partition_leases import PartitionLeases
from julia_chips.chip.snapshots import KvSnapshotStore
from julia_chips.clock import Clock
from julia_chips.contract.subjects import Bucket

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return uuid.uuid4().hex[:12]


class Worker:
    def __init__(self, nc: NATS, clock: Clock, partitions: int, lease_ttl: float,
                 settings: PartitionSettings, worker_id: str | None = None) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._clock = clock
        self._partitions = partitions
        self._lease_ttl = lease_ttl
        self._settings = settings
        self.worker_id = worker_id or new_worker_id()
        self._consumers: dict[int, tuple[PartitionConsumer, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()

    @property
    def partitions_held(self) -> set[int]:
        return set(self._consumers)

    async def run(self) -> None:
        leases = PartitionLeases(await self._js.key_value(Bucket.SHARD_LEASES), self.worker_id)
        event_log = JetStreamChipEventLog(self._js)
        snapshots = await KvSnapshotStore.open(self._js)
        try:
            while not self._stopping.is_set():
                try:
                    await self._tend(leases, event_log, snapshots)
                except (NatsError, TimeoutError) as err:
                    # NATS is reconnecting: leases may lapse meanwhile, and then another
                    # worker takes over; the expected-sequence check fences us off.
                    log.warning("worker %s could not tend its leases: %s", self.worker_id, err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._lease_ttl / 3)
        finally:
            await self._stop_all(leases)

    async def _tend(self, leases: PartitionLeases, event_log: JetStreamChipEventLog,
                    snapshots: KvSnapshotStore) -> None:
        await leases.heartbeat()
        released = await self._release_stopped(leases)
        for partition in list(self._consumers):
            if not await leases.renew(partition):
                log.warning("lost the lease of partition %d", partition)
                await self._stop_consumer(partition)
        share = await leases.fair_share(self._partitions)
        while len(self._consumers) > share:  # a worker joined: hand partitions over cleanly
            partition = max(self._consumers)
            await self._stop_consumer(partition)
            await leases.release(partition)
            log.info("worker %s handed partition %d over", self.worker_id, partition)
        for partition in range(self._partitions):
            if len(self._consumers) >= share:
                break
            if partition in released:  # free for another worker first; ours is next tend
                continue
            if partition not in self._consumers and await leases.claim(partition):
                consumer = PartitionConsumer(self._nc, self._js, partition, event_log, snapshots,
                                             self._clock, self._settings)
                self._consumers[partition] = (consumer, asyncio.create_task(consumer.run()))
                log.info("worker %s took partition %d", self.worker_id, partition)

    async def _release_stopped(self, leases: PartitionLeases) -> set[int]:
        """Give up the lease of every partition whose consumer is no longer running (its start
        or its loop failed): kept, it would leave the partition unserved while renewed."""
        stopped = {p for p, (_, task) in self._consumers.items() if task.done()}
        for partition in sorted(stopped):
            _, task = self._consumers.pop(partition)
            error = None if task.cancelled() else task.exception()
            why = f"{type(error).__name__}: {error}" if error else "it ended on its own"
            log.error("worker %s: the consumer of partition %d is not running (%s); releasing "
                      "its lease", self.worker_id, partition, why, exc_info=error)
            await leases.release(partition)
        return stopped

    async def _stop_consumer(self, partition: int) -> None:
        consumer, task = self._consumers.pop(partition)
        consumer.stop()
        await asyncio.gather(task, return_exceptions=True)

    async def _stop_all(self, leases: PartitionLeases) -> None:
        """All partitions at once: each waits up to a pull request's life to drain."""

        async def hand_back(partition: int) -> None:
            await self._stop_consumer(partition)
            await leases.release(partition)

        await asyncio.gather(*(hand_back(p) for p in list(self._consumers)))

    def stop(self) -> None:
        self._stopping.set()
