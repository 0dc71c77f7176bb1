"""A partition consumer that cannot start is not left for dead under a renewed lease: the
worker says so, releases the lease, and the partition is served once the cause is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from julia_chips.chip.client import ChipClient
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.subjects import Bucket, Stream, partition_commands
from tests.conftest import PARTITIONS, new_chip_id
from tests.integration.workers import running_worker


async def _lease_operations(kv: KeyValue, key: str, seen: list[str]) -> None:
    """Every put and delete of `key`, as they happen (the bucket keeps one revision)."""
    watcher = await kv.watch(key)
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                entry = await watcher.updates(timeout=1.0)
                if entry is not None:
                    seen.append(str(entry.operation or "PUT"))
    finally:
        await watcher.stop()


async def test_a_consumer_that_cannot_start_releases_its_partition_until_it_can(
        nc: NATS, js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    # A push durable under each name the partition consumers need: their `add_consumer`
    # fails ("can not update push consumer to pull based").
    for p in range(PARTITIONS):
        await js.add_consumer(Stream.CHIP_CMDS, ConsumerConfig(
            durable_name=f"chip-cmds-p{p}", filter_subject=partition_commands(p),
            ack_policy=AckPolicy.EXPLICIT, deliver_subject=f"squatter.{p}"))
    kv = await js.key_value(Bucket.SHARD_LEASES)
    operations: list[str] = []
    watching = asyncio.create_task(_lease_operations(kv, "p0", operations))
    caplog.set_level(logging.ERROR, logger="julia_chips.chip.worker")
    client = ChipClient(nc)
    try:
        async with running_worker(nc, wait_for_all=False):
            async with asyncio.timeout(10):
                while "DEL" not in operations:  # noqa: ASYNC110 (polling real I/O)
                    await asyncio.sleep(0.05)
            said = [r for r in caplog.records if "partition 0 is not running" in r.getMessage()]
            assert said and "push consumer" in said[0].getMessage(), caplog.text
            for p in range(PARTITIONS):  # the cause goes away
                await js.delete_consumer(Stream.CHIP_CMDS, f"chip-cmds-p{p}")
            reply = await client.send(new_chip_id(), cmd.Provision(command_id="p"), timeout=20)
    finally:
        watching.cancel()
        await client.close()
    assert reply.ok and reply.state == "provisioning", reply
