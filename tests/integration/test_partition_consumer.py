"""The partition consumer on a real server, with our own ports swapped where a fault is needed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.chip.partition import PartitionConsumer, PartitionSettings
from julia_chips.chip.snapshots import KvSnapshotStore
from julia_chips.clock import FixedClock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import ChipEvent
from julia_chips.contract.subjects import JuliaHeader
from tests.conftest import new_chip_id

CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))


class BrokenEventLog(JetStreamChipEventLog):
    """Reads work, every append fails: a store that keeps erroring for one command."""

    async def append(self, chip_id: str, events: Sequence[ChipEvent],
                     expected_last_seq: int) -> list[int]:
        raise ConnectionError("disk on fire")


async def _consume_all_partitions(nc: NATS, js: JetStreamContext, settings: PartitionSettings,
                                  log: JetStreamChipEventLog) -> list[PartitionConsumer]:
    snapshots = await KvSnapshotStore.open(js)
    return [PartitionConsumer(nc, js, p, log, snapshots, CLOCK, settings) for p in range(4)]


async def given_up(nc: NATS, js: JetStreamContext, chip: str) -> cmd.CommandReply:
    """A Provision for `chip` against a store whose appends keep failing: every partition
    consumer retries it `max_deliver` (2) times, then gives up and dead-letters it."""
    settings = PartitionSettings(ack_wait=5, max_deliver=2)
    consumers = await _consume_all_partitions(nc, js, settings, BrokenEventLog(js))
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        return await ChipClient(nc).send(chip, cmd.Provision(command_id="p"), timeout=20)
    finally:
        for c in consumers:
            c.stop()
        await asyncio.gather(*tasks)


async def test_command_that_keeps_failing_is_dead_lettered_after_max_deliver(
        nc: NATS, js: JetStreamContext) -> None:
    chip = new_chip_id()
    reply = await given_up(nc, js, chip)
    assert reply.ok is False and reply.error == "gave up after 2 deliveries"
    sub = await js.subscribe(f"dlq.chip.{chip}", ordered_consumer=True)
    letter = await sub.next_msg(timeout=2)
    assert msgspec.json.decode(letter.data)["command_id"] == "p"
    assert letter.headers and letter.headers[JuliaHeader.DLQ_REASON] == "gave up after 2 deliveries"
    assert await JetStreamChipEventLog(js).load(chip) == []


async def test_idle_chip_is_passivated_with_a_snapshot_and_recovered_on_next_command(
        nc: NATS, js: JetStreamContext) -> None:
    settings = PartitionSettings(idle_passivate=0.3, snapshot_every=1000)
    consumers = await _consume_all_partitions(nc, js, settings, JetStreamChipEventLog(js))
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    client = ChipClient(nc)
    chip = new_chip_id()
    try:
        await client.send(chip, cmd.Provision(command_id="p"))
        await client.send(chip, cmd.StartActivation(command_id="s"))
        snapshots = await KvSnapshotStore.open(js)
        for _ in range(100):  # passivation runs between pulls (every ~0.5 s)
            if (snap := await snapshots.load(chip)) is not None:
                break
            await asyncio.sleep(0.05)
        assert snap is not None and snap.state.status == "activating" and snap.last_seq == 2
        assert all(chip not in c._actors for c in consumers)
        again = await client.send(chip, cmd.StartActivation(command_id="s"))
        assert again.ok and [e.seq for e in again.events] == [2]  # first answer, from snapshot
        after = await client.send(chip, cmd.CompleteActivation(command_id="c", instance="i",
                                                                host="h"))
    finally:
        for c in consumers:
            c.stop()
        await asyncio.gather(*tasks)
    assert after.ok and after.state == "warming" and after.events[0].seq == 3


async def test_deliveries_read_from_the_ack_subject_match_nats_py_metadata(
        js: JetStreamContext) -> None:
    from julia_chips.jetstream.pull_feed import deliveries, stream_seq

    await js.publish(f"chip.cmd.{new_chip_id()}", b"{}")
    sub = await js.pull_subscribe("chip.cmd.>", durable="deliveries-check")
    [first] = await sub.fetch(1, timeout=2)
    await first.nak()
    [again] = await sub.fetch(1, timeout=2)
    assert [deliveries(first), deliveries(again)] == [1, 2]
    assert deliveries(again) == again.metadata.num_delivered
    assert stream_seq(again) == again.metadata.sequence.stream
    await again.ack()


async def test_a_new_owner_takes_the_commands_its_predecessor_held_first_and_in_order(
        nc: NATS, js: JetStreamContext) -> None:
    """Provision was delivered to an owner that died before acking it; StartActivation came
    after. The next owner must handle Provision first, not StartActivation on a chip that
    does not exist yet (and Provision only after `ack_wait`)."""
    settings = PartitionSettings(ack_wait=30)
    consumers = await _consume_all_partitions(nc, js, settings, JetStreamChipEventLog(js))
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    for c in consumers:  # they only create their durables here
        c.stop()
    await asyncio.gather(*tasks)
    chip, client = new_chip_id(), ChipClient(nc)
    provision = asyncio.create_task(client.send(chip, cmd.Provision(command_id="p"), timeout=20))
    held = None
    while held is None:  # the dead owner: whichever partition the chip maps to
        for p in range(4):
            sub = await js.pull_subscribe_bind(f"chip-cmds-p{p}", "CHIP_CMDS")
            with contextlib.suppress(TimeoutError):
                [held] = await sub.fetch(1, timeout=0.1)
            await sub.unsubscribe()
            if held is not None:
                break
    start = asyncio.create_task(client.send(chip, cmd.StartActivation(command_id="s"),
                                            timeout=20))
    await asyncio.sleep(0.2)  # stored behind the held Provision
    consumers = await _consume_all_partitions(nc, js, settings, JetStreamChipEventLog(js))
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        replies = await asyncio.gather(provision, start)
    finally:
        for c in consumers:
            c.stop()
        await asyncio.gather(*tasks)
    assert [(r.ok, r.state) for r in replies] == [(True, "provisioning"), (True, "activating")]
