"""Two writers on one chip: optimistic concurrency on the real stream, never a lost write."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from nats.js.client import JetStreamContext

from julia_chips.chip.actor import ChipActor
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip_commands as cmd
from tests.conftest import new_chip_id
from tests.fakes import InMemorySnapshotStore
from tests.unit.chip_builders import NOW
from tests.unit.chip_properties import command_sequences, drive_and_check


async def test_two_writers_racing_one_wins_the_other_retries_on_new_state(
        js: JetStreamContext) -> None:
    log = JetStreamChipEventLog(js)
    chip = new_chip_id()
    a = ChipActor(chip, log, InMemorySnapshotStore())
    b = ChipActor(chip, log, InMemorySnapshotStore())
    await a.handle(cmd.Provision(command_id="p"), NOW)
    await b.recover()
    await a.handle(cmd.StartActivation(command_id="s"), NOW)
    await a.handle(cmd.CompleteActivation(command_id="c", instance="i", host="h"), NOW)
    # b is two events behind; both now record traffic at once.
    async def writer(name: str, actor: ChipActor) -> list[bool]:
        return [(await actor.handle(cmd.ObserveTraffic(command_id=f"{name}{n}", sent=1), NOW)).ok
                for n in range(10)]

    results = await asyncio.gather(writer("a", a), writer("b", b))
    assert results == [[True] * 10, [True] * 10]
    stored = await log.load(chip)
    ids = [s.event.command_id for s in stored]
    assert len(ids) == len(set(ids)) == 3 + 20  # nothing lost, nothing doubled
    await a.handle(cmd.ObserveTraffic(command_id="sync", sent=0), NOW)  # a catches up on b's
    assert a.state.day.sent == 20


async def test_stale_writer_refused_move_is_decided_on_the_new_state(js: JetStreamContext) -> None:
    log = JetStreamChipEventLog(js)
    chip = new_chip_id()
    a = ChipActor(chip, log, InMemorySnapshotStore())
    b = ChipActor(chip, log, InMemorySnapshotStore())
    await a.handle(cmd.Provision(command_id="p"), NOW)
    await b.recover()
    await a.handle(cmd.Retire(command_id="r", reason="gone"), NOW)
    late = await b.handle(cmd.StartActivation(command_id="s"), NOW + timedelta(seconds=1))
    assert late.ok is False and late.state == "retired"
    assert [s.event.command_id for s in await log.load(chip)] == ["p", "r"]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(sequence=command_sequences)
async def test_stored_history_rebuilds_actor_state_on_jetstream(
        js: JetStreamContext, sequence: list[cmd.AnyChipCommand]) -> None:
    log = JetStreamChipEventLog(js)
    actor = ChipActor(new_chip_id(), log, InMemorySnapshotStore())
    await drive_and_check(actor, log, sequence)
