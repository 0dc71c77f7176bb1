"""Wiring: start the parts that exist against the configured infrastructure, stop on a signal."""

from __future__ import annotations

import asyncio
import logging
import signal

import nats
from nats.aio.client import Client as NATS

from julia_chips.actors.warmup import WarmupPolicy
from julia_chips.clock import Clock, SystemClock
from julia_chips.config import Config
from julia_chips.infrastructure import infrastructure
from julia_chips.runtime.partition import PartitionSettings
from julia_chips.runtime.worker import Worker
from julia_chips.store.streams import ensure_streams

log = logging.getLogger(__name__)


def partition_settings(config: Config) -> PartitionSettings:
    policy = WarmupPolicy(min_days=config.warmer_min_days, max_days=config.warmer_max_days)
    return PartitionSettings(ack_wait=config.ack_wait, max_deliver=config.max_deliver,
                             snapshot_every=config.snapshot_every,
                             idle_passivate=config.idle_passivate, policy=policy)


async def connect(url: str) -> NATS:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_worker(config: Config, worker_id: str | None = None,
                     clock: Clock | None = None) -> int:
    """Only chip workers, against NATS_URL (scaling out, and the crash tests)."""
    if config.nats_url is None:
        log.error("julia-chips worker needs NATS_URL")
        return 2
    stop = asyncio.Event()
    _stop_on_signals(stop)
    nc = await connect(config.nats_url)
    await ensure_streams(nc.jetstream(), config.replicas, config.lease_ttl)
    worker = Worker(nc, clock or SystemClock(), config.partitions, config.lease_ttl,
                    partition_settings(config), worker_id)
    task = asyncio.create_task(worker.run())
    log.info("worker %s started", worker.worker_id)
    await stop.wait()
    worker.stop()
    await task
    await nc.drain()
    return 0


async def run_all(config: Config) -> int:
    """Everything that exists, until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with infrastructure(config) as endpoints:
        nc = await connect(endpoints.nats_url)
        await ensure_streams(nc.jetstream(), config.replicas, config.lease_ttl)
        worker = Worker(nc, SystemClock(), config.partitions, config.lease_ttl,
                        partition_settings(config))
        tasks = [asyncio.create_task(worker.run())]
        log.info("julia-chips running (NATS %s); Ctrl-C to stop", endpoints.nats_url)
        await stop.wait()
        log.info("stopping")
        worker.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.drain()
    return 0
