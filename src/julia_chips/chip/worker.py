"""A worker: holds partition leases and runs a consumer for each partition it holds.

Every `renew_every` (0.4 s, a third of the TTL when that is less) it says it is alive,
releases the leases whose consumer stopped (so the partition is started afresh, here or
elsewhere) and renews the others (a lost one stops that consumer). Every `look_every` it
looks at the bucket (a watch, `jetstream/leases/board.py`): it claims free partitions up to
its fair share of the live workers, and probes the presence of any worker whose keys went
unrenewed for `stale_after`; one proved gone (its connection closed: a SIGKILL) is counted
out of the fair share and its partitions are taken over at once, by CAS on the revision
seen. A worker that is only slow keeps its partitions until the TTL.
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
from julia_chips.chip.partition_leases import HEARTBEAT_PREFIX, PartitionLeases, partition_key
from julia_chips.chip.snapshots import KvSnapshotStore
from julia_chips.clock import Clock
from julia_chips.contract.subjects import Bucket
from julia_chips.jetstream.leases.board import LeaseBoard
from julia_chips.jetstream.leases.presence import holder_gone, present
from julia_chips.jetstream.leases.sightings import LeaseTiming, Verdict

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
        self._timing = LeaseTiming.for_ttl(lease_ttl)
        self._settings = settings
        self.worker_id = worker_id or new_worker_id()
        self._consumers: dict[int, tuple[PartitionConsumer, asyncio.Task[None]]] = {}
        self._probes: dict[str, asyncio.Task[bool]] = {}
        self._released: set[int] = set()  # free for another worker first, until next renewal
        self._stopping = asyncio.Event()

    @property
    def partitions_held(self) -> set[int]:
        return set(self._consumers)

    async def run(self) -> None:
        kv = await self._js.key_value(Bucket.SHARD_LEASES)
        leases = PartitionLeases(self._nc, kv, self.worker_id)
        event_log = JetStreamChipEventLog(self._js)
        snapshots = await KvSnapshotStore.open(self._js)
        async with present(self._nc, self.worker_id), LeaseBoard(kv, ">",
                                                                 self._timing) as board:
            renew_at = board.now()
            try:
                while not self._stopping.is_set():
                    try:
                        if board.now() >= renew_at:
                            renew_at = board.now() + self._timing.renew_every
                            await self._keep(leases)
                        await self._balance(leases, board, event_log, snapshots)
                    except (NatsError, TimeoutError) as err:
                        # NATS is reconnecting: leases may lapse meanwhile, and then another
                        # worker takes over; the expected-sequence check fences us off.
                        log.warning("worker %s could not tend its leases: %s", self.worker_id,
                                    err)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self._timing.look_every)
            finally:
                for probe in self._probes.values():
                    probe.cancel()
                await self._stop_all(leases)

    async def _keep(self, leases: PartitionLeases) -> None:
        """Heartbeat, give up stopped consumers' leases, renew the others."""
        await leases.heartbeat()
        self._released = await self._release_stopped(leases)
        for partition in list(self._consumers):
            if not await leases.renew(partition):
                log.warning("lost the lease of partition %d", partition)
                await self._stop_consumer(partition)

    async def _balance(self, leases: PartitionLeases, board: LeaseBoard,
                       event_log: JetStreamChipEventLog, snapshots: KvSnapshotStore) -> None:
        gone = self._proved_gone()
        for worker_id in gone:
            log.warning("worker %s: worker %s is gone (no presence); taking its share",
                        self.worker_id, worker_id)
            await leases.bury(worker_id, board)
        self._probe_stale(board)
        share = leases.fair_share(self._partitions, board, gone)
        # A worker joined: hand the highest partitions over cleanly, all at once (each drains
        # up to a pull request's life: one after another, renewals would wait for them all).
        await asyncio.gather(*(self._hand_over(leases, partition)
                               for partition in sorted(self._consumers)[share:]))
        for partition in range(self._partitions):
            if len(self._consumers) >= share:
                break
            if partition in self._released or partition in self._consumers:
                continue
            if await leases.claim(partition, board, gone.__contains__):
                consumer = PartitionConsumer(self._nc, self._js, partition, event_log, snapshots,
                                             self._clock, self._settings)
                self._consumers[partition] = (consumer, asyncio.create_task(consumer.run()))
                log.info("worker %s took partition %d", self.worker_id, partition)

    async def _hand_over(self, leases: PartitionLeases, partition: int) -> None:
        await self._stop_consumer(partition)
        await leases.release(partition)
        log.info("worker %s handed partition %d over", self.worker_id, partition)

    def _probe_stale(self, board: LeaseBoard) -> None:
        """Ask, in the background, whether the holders of stale keys are gone: a probe of a
        slow holder waits `probe_timeout`, which must not hold up renewals or claims."""
        stale = {key.removeprefix(HEARTBEAT_PREFIX) for key in board.under(HEARTBEAT_PREFIX)
                 if board.verdict(key) is Verdict.STALE}
        for partition in range(self._partitions):
            sighting = board.sighting(partition_key(partition))
            if (partition not in self._consumers and sighting is not None
                    and board.verdict(partition_key(partition)) is Verdict.STALE):
                stale.add(sighting.holder)
        for holder in stale - {self.worker_id} - set(self._probes):
            self._probes[holder] = asyncio.create_task(
                holder_gone(self._nc, holder, self._timing))

    def _proved_gone(self) -> set[str]:
        """The holders whose probe ended since the last look and proved them gone."""
        done = [holder for holder, probe in self._probes.items() if probe.done()]
        gone = set()
        for holder in done:
            probe = self._probes.pop(holder)
            if not probe.cancelled() and probe.exception() is None and probe.result():
                gone.add(holder)
        return gone

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
