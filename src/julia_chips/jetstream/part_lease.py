"""Singleton parts by KV lease: one key in `shard_leases` per part, taken by CAS.

The balancer, the projections, the observation deriver, the health monitor and the activator
must each run in one process at a time (the deriver rewinds a shared durable, the others
would double their work), yet `julia-chips run` may run on several hosts. Whoever holds the
part's key runs it; the others stand by. Creation, renewal and takeover are compare-and-set,
so two holders never both believe they took the same revision.

A standby takes the key over in two ways (`jetstream/leases/`): at once when the holder's
connection is proved gone (the key unrenewed for `stale_after` and its presence subject with
no subscriber: a SIGKILLed process, under 2 s), or when the bucket's TTL expires the key (a
holder cut off with its socket still open at the server, whose death nobody can prove).

TTLs and renewals are real seconds, never the injected clock's: they are about processes,
not the domain, and the demo's accelerated clock must not expire them.
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
from julia_chips.jetstream.leases.board import LeaseBoard
from julia_chips.jetstream.leases.presence import holder_gone, present
from julia_chips.jetstream.leases.sightings import LeaseTiming, Sighting, Verdict

log = logging.getLogger(__name__)


class LeaderLease:
    """The lease on one part: `key` in `shard_leases`, its value the holder's name."""

    def __init__(self, nc: NATS, kv: KeyValue, key: str, holder: str) -> None:
        self.nc = nc
        self.kv = kv
        self.key = key
        self.holder = holder
        self._revision: int | None = None

    async def acquire(self) -> bool:
        try:
            self._revision = await self.kv.create(self.key, self.holder.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def take_over(self, revision: int) -> bool:
        """Replace the holder whose renewal `revision` was seen last; False when it renewed
        meanwhile or another standby was first (both CAS on the same revision: one wins)."""
        try:
            self._revision = await self.kv.update(self.key, self.holder.encode(), last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return False
        return True

    async def renew(self) -> bool:
        """False (and no longer held) when the lease expired or someone else took it."""
        if self._revision is None:
            return False
        try:
            self._revision = await self.kv.update(self.key, self.holder.encode(),
                                                  last=self._revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            self._revision = None
            return False
        return True

    async def release(self) -> None:
        revision, self._revision = self._revision, None
        if revision is not None:
            with contextlib.suppress(Exception):
                await self.kv.delete(self.key, last=revision)


async def part_lease(nc: NATS, key: str, holder: str | None = None) -> LeaderLease:
    """The lease on `key`, held in the name of this host and process unless told otherwise
    (so an operator reading the bucket sees who runs the part)."""
    kv = await nc.jetstream().key_value(Bucket.SHARD_LEASES)
    return LeaderLease(nc, kv, key, holder or f"{socket.gethostname()}:{os.getpid()}")


async def take_if_free_or_dead(lease: LeaderLease, board: LeaseBoard,
                               gone: Callable[[str], bool] | None = None) -> bool:
    """Take `lease` when the board shows it free, or stale with its holder proved gone.

    A stale key in our own name that we do not hold is a dead incarnation's (the same
    `--worker-id` after a restart, the same `host:pid` in a restarted container): our
    presence subscription answers for it, so it is taken without a probe. `gone`, when
    given, says what probes already proved in this round (a worker asks once per holder)."""
    verdict = board.verdict(lease.key)
    if verdict is Verdict.FREE:
        if await lease.acquire():
            return True
        await board.refresh(lease.key)  # the board missed it: judge the key as it is
        return False
    sighting = board.sighting(lease.key)
    if verdict is Verdict.HELD or sighting is None:
        return False
    if sighting.holder != lease.holder:
        proved = (gone(sighting.holder) if gone is not None
                  else await holder_gone(lease.nc, sighting.holder, board.timing))
        if not proved:
            return False
    return await _took_over(lease, sighting)


async def _took_over(lease: LeaderLease, sighting: Sighting) -> bool:
    if not await lease.take_over(sighting.revision):
        return False
    log.warning("%s took lease %s over from %s, whose connection is gone", lease.holder,
                lease.key, sighting.holder)
    return True


class Part(Protocol):
    """A singleton part: `run` until `stop`. One instance per tenure: `stop` is final."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_while_holding(lease: LeaderLease, ttl: float, start_part: Callable[[], Part],
                            stopping: asyncio.Event) -> None:
    """Run a fresh part from `start_part` while `lease` is held, stand by while it is not.

    The holder renews every `renew_every` (0.4 s, a third of the TTL when that is less) and
    stops its part the moment a renewal fails or takes longer than `ttl / 3`: a holder cut
    off from NATS stops before its key expires. It is present (`leases/presence.py`) for the
    whole call, so a standby that sees the key unrenewed learns whether its connection is
    gone. A standby looks at the key every `look_every` (a watch, no polling) and takes it
    when free or proved dead. The lease is released only once the part has ended. Runs
    until `stopping` is set; then the part stops and the lease is released, so a standby
    takes over at once. A part that fails gives the lease up and its failure is raised
    here, for the supervisor (`runtime.supervisor`) to log and restart.
    """
    timing = LeaseTiming.for_ttl(ttl)
    async with present(lease.nc, lease.holder), LeaseBoard(lease.kv, lease.key,
                                                           timing) as board:
        while not stopping.is_set():
            if await _taken(lease, board):
                log.info("%s holds lease %s: the part runs here", lease.holder, lease.key)
                try:
                    await _hold(lease, timing, start_part(), stopping)
                finally:
                    await lease.release()  # only once the part ended: never two at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timing.look_every)


async def _taken(lease: LeaderLease, board: LeaseBoard) -> bool:
    try:
        return await take_if_free_or_dead(lease, board)
    except (NatsError, TimeoutError) as err:  # NATS away: try again at the next look
        log.warning("lease %s not taken (%r)", lease.key, err)
        return False


async def _hold(lease: LeaderLease, timing: LeaseTiming, part: Part,
                stopping: asyncio.Event) -> None:
    running = asyncio.create_task(part.run())
    lost = asyncio.create_task(_renew_until_lost(lease, timing))
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait((running, lost, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        stop.cancel()
        part.stop()
        await running  # a failure goes up, to the part's supervisor, once the lease is given up


async def _renew_until_lost(lease: LeaderLease, timing: LeaseTiming) -> None:
    """Renew every `renew_every`; return when a renewal fails, is refused or takes longer
    than `ttl / 3` (so the part stops before the key can expire and a standby start)."""
    while True:
        await asyncio.sleep(timing.renew_every)
        try:
            async with asyncio.timeout(timing.ttl / 3):
                if await lease.renew():
                    continue
            log.warning("%s lost lease %s: stopping the part", lease.holder, lease.key)
        except (NatsError, TimeoutError) as err:
            log.warning("%s could not renew lease %s (%r): stopping the part", lease.holder,
                        lease.key, err)
        return
