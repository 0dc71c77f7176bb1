"""Workers share the partitions: a joining worker gets its fair share, handed over cleanly."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip_commands as cmd
from tests.conftest import PARTITIONS, new_chip_id
from tests.integration.workers import running_worker


async def test_second_worker_takes_half_the_partitions_and_commands_keep_flowing(
        nc: NATS, js: JetStreamContext) -> None:
    client = ChipClient(nc)
    chips = [new_chip_id() for _ in range(40)]
    async with running_worker(nc) as first:
        assert first.partitions_held == set(range(PARTITIONS))
        await asyncio.gather(*(client.send(c, cmd.Provision(command_id="p")) for c in chips))
        async with running_worker(nc, wait_for_all=False) as second:
            for _ in range(200):
                if len(second.partitions_held) == PARTITIONS // 2:
                    break
                await asyncio.sleep(0.05)
            assert len(first.partitions_held) == len(second.partitions_held) == PARTITIONS // 2
            assert first.partitions_held.isdisjoint(second.partitions_held)
            replies = await asyncio.gather(
                *(client.send(c, cmd.StartActivation(command_id="s")) for c in chips))
    assert all(r.ok and r.state == "activating" for r in replies)
    log = JetStreamChipEventLog(js)
    for chip in chips:
        assert [s.event.command_id for s in await log.load(chip)] == ["p", "s"]
