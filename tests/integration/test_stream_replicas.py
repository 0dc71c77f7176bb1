"""Replicas on a real 3-node cluster: a process started with fewer never lowers a stream's
or a bucket's copies (it warns), and a bucket made by a first process with one copy is
raised to the configured count."""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest

from julia_chips.contract.subjects import Bucket, Stream
from julia_chips.embedded.nats_cluster import NatsCluster
from julia_chips.infrastructure import connect_nats
from julia_chips.jetstream.streams import ensure_buckets, ensure_streams
from tests.integration.cluster_fixtures import cluster  # noqa: F401 (fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.own_nats_server]


async def _replicas(js: nats.js.JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).config.num_replicas or 1


async def test_a_process_with_fewer_replicas_leaves_the_streams_at_three(
        cluster: NatsCluster, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    nc = await connect_nats(cluster.url)
    js = nc.jetstream()
    try:
        await ensure_streams(js, replicas=3)
        with caplog.at_level(logging.WARNING, "julia_chips.jetstream.streams"):
            await ensure_streams(js, replicas=1)  # a worker whose unit forgot JULIA_REPLICAS
        for stream in (Stream.CHIP_EVENTS, Stream.CHIP_CMDS, Stream.ROUTE_EVENTS):
            assert await _replicas(js, str(stream)) == 3
        assert await _replicas(js, f"KV_{Bucket.SHARD_LEASES}") == 3
        assert any("keeps its 3 replicas" in r.getMessage() and "CHIP_EVENTS" in r.getMessage()
                   for r in caplog.records)
    finally:
        await nc.close()


async def test_buckets_a_first_process_made_with_one_copy_are_raised(
        cluster: NatsCluster) -> None:  # noqa: F811
    nc = await connect_nats(cluster.url)
    js = nc.jetstream()
    try:
        await ensure_buckets(js, replicas=1, lease_ttl=10.0)
        assert await _replicas(js, f"KV_{Bucket.CHIP_SNAPSHOTS}") == 1
        await ensure_buckets(js, replicas=3, lease_ttl=10.0)
        for bucket in (Bucket.SHARD_LEASES, Bucket.CHIP_SNAPSHOTS):
            assert await _replicas(js, f"KV_{bucket}") == 3
        kv = await js.key_value(str(Bucket.CHIP_SNAPSHOTS))
        async with asyncio.timeout(30):  # the bucket serves again once its peers caught up
            while True:
                try:
                    await kv.put("still.works", b"1")
                    break
                except nats.errors.TimeoutError:
                    continue
        assert (await kv.get("still.works")).value == b"1"
    finally:
        await nc.close()
