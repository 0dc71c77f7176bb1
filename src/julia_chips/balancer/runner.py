"""Runs the balancer: one leader at a time by KV lease, the others hot standbys.

A standby watches the lease; when the leader dies the standby takes over (within 2 s when
the leader's connection is proved gone, after `lease_ttl` when not: `jetstream/leases/`),
rebuilds from the streams and consumes the requests the dead leader left unacked. The lease
is held as every singleton part's is (`part_lease.run_while_holding`); the leader steps down
the moment a renewal fails or a fenced write tells it someone else leads.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from nats.aio.client import Client as NATS

from julia_chips.balancer.dispatch import WhatsAppSender
from julia_chips.balancer.leader import BalancerSettings, FailoverTiming, Leader
from julia_chips.balancer.metrics import IS_LEADER
from julia_chips.balancer.model.protection import ProtectionPolicy
from julia_chips.balancer.requests import RequestConsumer
from julia_chips.clock import Clock
from julia_chips.config import Config
from julia_chips.contract.subjects import BALANCER_LEASE
from julia_chips.jetstream.part_lease import part_lease, run_while_holding

log = logging.getLogger(__name__)


def balancer_settings(config: Config) -> BalancerSettings:
    protection = ProtectionPolicy(
        weekly_prospecting_cap=config.weekly_prospecting_cap,
        quarantine=timedelta(days=config.quarantine_days))
    return BalancerSettings(max_active=config.max_chips_active, lease_ttl=config.lease_ttl,
                            ack_wait=config.ack_wait, max_deliver=config.max_deliver,
                            reply_prefixes=config.reply_prefixes, protection=protection,
                            phone_secret=config.phone_key.encode())


class BalancerRunner:
    def __init__(self, nc: NATS, clock: Clock, settings: BalancerSettings,
                 sender: WhatsAppSender, holder: str | None = None) -> None:
        self._nc, self._clock, self._settings, self._sender = nc, clock, settings, sender
        self.holder = holder or f"balancer-{uuid.uuid4().hex[:8]}"
        self.failovers: list[FailoverTiming] = []  # for the benchmark and /metrics
        self.leader: Leader | None = None
        self.leading = asyncio.Event()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        lease = await part_lease(self._nc, BALANCER_LEASE, self.holder)
        await run_while_holding(lease, self._settings.lease_ttl, self._leadership,
                                self._stopping)

    def _leadership(self) -> _Leadership:
        self.leader = Leader(self._nc, self._clock, self._settings, self._sender,
                             self.failovers)
        return _Leadership(self, self.leader)

    async def lead(self, leader: Leader) -> None:
        """Rebuild, then route until deposed (lease lost, a fenced write, or stopping)."""
        log.info("%s leads the balancer", self.holder)
        tasks: list[asyncio.Task[None]] = []
        try:
            await leader.rebuild()
            self.leading.set()
            IS_LEADER.set(1)
            tasks += [asyncio.create_task(RequestConsumer(leader).run()),
                      asyncio.create_task(self._tick(leader))]
            deposed = asyncio.create_task(leader.deposed.wait())
            await asyncio.wait([deposed, *tasks], return_when=asyncio.FIRST_COMPLETED)
            deposed.cancel()
            for task in tasks:
                if task.done() and task.exception():
                    log.error("balancer task failed: %r", task.exception())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await leader.close()
            IS_LEADER.set(0)
            self.leading.clear()
            log.info("%s no longer leads the balancer", self.holder)

    async def _tick(self, leader: Leader) -> None:
        """Backlog passes (capacity frees at local midnight too), pool upkeep, and the
        backlog summary for the read API (a failed write is retried next tick)."""
        while True:
            if leader.state.backlog:
                leader.serve_backlog()
            leader.tend_pool()
            leader.report_backlog()
            await asyncio.sleep(self._settings.backlog_every)

    def stop(self) -> None:
        self._stopping.set()


class _Leadership:
    """One tenure of the balancer's lease, as `run_while_holding` runs a part: stopping it
    deposes the leader, which is also how a lost lease or a fenced write ends it."""

    def __init__(self, runner: BalancerRunner, leader: Leader) -> None:
        self._runner, self._leader = runner, leader

    async def run(self) -> None:
        await self._runner.lead(self._leader)

    def stop(self) -> None:
        self._leader.deposed.set()


async def run_balancer(nc: NATS, clock: Clock, config: Config, gateway: WhatsAppSender,
                       holder: str | None = None) -> None:
    """Entry for `julia-chips run`: leads or stands by until cancelled."""
    runner = BalancerRunner(nc, clock, balancer_settings(config), gateway, holder)
    try:
        await runner.run()
    except asyncio.CancelledError:
        runner.stop()
        raise
