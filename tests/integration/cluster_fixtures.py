"""A 3-node NATS cluster on loopback for the cluster tests: the nodes, a connection at
JULIA_REPLICAS=3, which node leads a stream, and whether a returning node caught up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from julia_chips.balancer.dispatch import WhatsAppSender
from julia_chips.balancer.runner import BalancerRunner
from julia_chips.clock import FixedClock, SystemClock
from julia_chips.embedded.nats_cluster import NatsCluster
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.infrastructure import connect_nats
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.supervisor import Supervisor
from tests.conftest import LEASE_TTL, PARTITIONS
from tests.integration.balancer_harness import SETTINGS
from tests.unit.balancer_builders import NOW

REPLICAS = 3


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", partitions=PARTITIONS)
    await asyncio.to_thread(nodes.start)
    try:
        await nodes.ready()
        yield nodes
    finally:
        await asyncio.to_thread(nodes.stop)


@pytest.fixture
async def cluster_nc(cluster: NatsCluster) -> AsyncIterator[NATS]:
    """A connection to every node (it moves to another when its node dies), with the streams
    and buckets at three replicas, as `JULIA_REPLICAS=3` makes them."""
    nc = await connect_nats(cluster.url)
    await ensure_streams(nc.jetstream(), replicas=REPLICAS, lease_ttl=LEASE_TTL)
    yield nc
    await nc.close()


def node_named(cluster: NatsCluster, name: str) -> EmbeddedNats:
    """The node whose `server_name` is `name` (`nats-<i>`, nats_cluster.py)."""
    return cluster.nodes[int(name.rsplit("-", 1)[1])]


async def stream_leader(nc: NATS, stream: str, timeout: float = 30.0) -> str:
    """The name of the node leading `stream`, once it has one."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                info = await nc.jetstream().stream_info(stream)
                if info.cluster is not None and info.cluster.leader:
                    return info.cluster.leader
            except Exception:  # no leader yet: JetStream answers nothing or an error
                pass
            await asyncio.sleep(0.1)


async def until_current(nc: NATS, streams: list[str], node: str, timeout: float = 60.0
                        ) -> float:
    """Seconds until `node` is a current replica, lag 0, of every stream in `streams` (its
    leader's view); it may also have become a stream's leader."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(timeout):
        pending = set(streams)
        while pending:
            for stream in list(pending):
                try:
                    info = await nc.jetstream().stream_info(stream)
                except Exception:  # an election in progress
                    continue
                assert info.cluster is not None
                peers = {p.name: p for p in info.cluster.replicas or []}
                peer = peers.get(node)
                if info.cluster.leader == node or (
                        peer is not None and peer.current and not peer.offline
                        and not peer.lag):
                    pending.discard(stream)
            await asyncio.sleep(0.1)
    return loop.time() - started


@asynccontextmanager
async def another_database(postgres_url: str) -> AsyncIterator[str]:
    """A second fresh database on the shared server (a rebuild's target), dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def supervised_balancer(nc: NATS, sender: WhatsAppSender) -> AsyncIterator[BalancerRunner]:
    """The balancer as `julia-chips run` runs it: under the supervisor, which starts it again
    when a tenure fails (a rebuild that times out while a stream elects its leader)."""
    runner = BalancerRunner(nc, FixedClock(NOW), SETTINGS, sender)
    stopping = asyncio.Event()
    task = Supervisor(SystemClock()).start("balancer", runner.run, stopping)
    try:
        await asyncio.wait_for(runner.leading.wait(), 30)
        yield runner
    finally:
        stopping.set()
        runner.stop()
        await task
