"""Helpers for the warm-up tests: chips brought to `warming`, their warm days, a stepped clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd

# 2026-03-02 10:00 in São Paulo (UTC-3); its midnight is 03:00 UTC.
MORNING = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
FIRST_MIDNIGHT = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


async def warming_chips(client: ChipClient, chip_ids: list[str]) -> None:
    async def one(chip: str) -> None:
        for command in (cmd.Provision(command_id="p"), cmd.StartActivation(command_id="s"),
                        cmd.CompleteActivation(command_id="c", instance=f"inst-{chip}",
                                               host="vps-1")):
            reply = await client.send(chip, command)
            assert reply.ok, reply
    await asyncio.gather(*(one(c) for c in chip_ids))


async def events_of(js: JetStreamContext, chip: str) -> list[ev.AnyChipEvent]:
    return [s.event for s in await JetStreamChipEventLog(js).load(chip)]


async def closed_days(js: JetStreamContext, chip: str) -> Counter[int]:
    return Counter(e.day_number for e in await events_of(js, chip)
                   if isinstance(e, ev.WarmDayCompleted))


async def wait_days_closed(js: JetStreamContext, chips: list[str], day: int,
                           timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            counts = [await closed_days(js, c) for c in chips]
            if all(count[day] >= 1 for count in counts):
                return
            await asyncio.sleep(0.02)
