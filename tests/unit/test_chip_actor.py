"""The chip actor over the in-memory fakes: properties, idempotency, partial appends."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings

from julia_chips.chip.actor import ChipActor
from julia_chips.chip.model.lifecycle import decide
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.warmer.model.policy import WarmupPolicy
from tests.fakes import InMemoryChipEventLog, InMemorySnapshotStore
from tests.unit.chip_builders import NOW, chip_in, run, sample
from tests.unit.chip_properties import command_sequences, drive_and_check


def actor(log: InMemoryChipEventLog | None = None,
          snaps: InMemorySnapshotStore | None = None, every: int = 50) -> ChipActor:
    return ChipActor("chip-1", log or InMemoryChipEventLog(), snaps or InMemorySnapshotStore(),
                     snapshot_every=every)


@settings(max_examples=300, deadline=None)
@given(command_sequences)
def test_history_rebuilds_state_and_holds_only_legal_moves(sequence: list[cmd.AnyChipCommand]) -> None:
    log = InMemoryChipEventLog()
    asyncio.run(drive_and_check(actor(log), log, sequence))


async def test_repeated_command_gets_first_answer_and_appends_nothing() -> None:
    log = InMemoryChipEventLog()
    chip = actor(log)
    first = await chip.handle(cmd.Provision(command_id="p1", ddd=11), NOW)
    again = await chip.handle(cmd.Provision(command_id="p1", ddd=11), NOW)
    assert first == again and first.ok
    assert len(await log.load("chip-1")) == 1


async def test_recovery_from_snapshot_and_tail_equals_full_replay() -> None:
    log, snaps = InMemoryChipEventLog(), InMemorySnapshotStore()
    chip = actor(log, snaps, every=3)
    for command_type in (cmd.Provision, cmd.StartActivation, cmd.CompleteActivation):
        await chip.handle(sample(command_type), NOW)
    for _ in range(4):
        await chip.handle(sample(cmd.ObserveTraffic), NOW)
    assert snaps.snapshots["chip-1"].last_seq < chip.last_seq  # a tail exists past the snapshot
    recovered = actor(log, snaps, every=3)
    await recovered.recover()
    assert (recovered.state, recovered.last_seq) == (chip.state, chip.last_seq)
    again = await recovered.handle(cmd.Provision(command_id="x"), NOW)
    assert again.ok is False and again.state == "warming"


async def test_partly_appended_command_is_completed_not_duplicated() -> None:
    """A crash between the two appends of CloseWarmDay leaves only WarmDayCompleted stored;
    the redelivered command appends the missing Ready, decided at the original time."""
    policy = WarmupPolicy(min_days=1)
    log = InMemoryChipEventLog()
    warming = chip_in(Status.WARMING)
    traffic = sample(cmd.ObserveTraffic)
    seed = [*decide(warming, traffic, NOW)]
    # Bring the log to the warming chip's history, then store half of the day close.
    history_state = chip_in(None)
    for command_type in (cmd.Provision, cmd.StartActivation, cmd.CompleteActivation):
        command = sample(command_type)
        events = decide(history_state, command, NOW)
        await log.append("chip-1", events, await log.last_seq("chip-1"))
        history_state = run(history_state, command)
    await log.append("chip-1", seed, await log.last_seq("chip-1"))
    state = run(history_state, traffic)
    close = cmd.CloseWarmDay(command_id="close-1", day_number=1)
    completed, _ready = decide(state, close, NOW, policy)
    await log.append("chip-1", [completed], await log.last_seq("chip-1"))

    chip = ChipActor("chip-1", log, InMemorySnapshotStore(), policy)
    await chip.recover()
    reply = await chip.handle(close, NOW.replace(hour=23))
    types = [type(s.event).__name__ for s in await log.load("chip-1")]
    assert types[-2:] == ["WarmDayCompleted", "Ready"] and types.count("WarmDayCompleted") == 1
    assert reply.ok and reply.state == "ready" and [e.type for e in reply.events] == [
        "WarmDayCompleted", "Ready"]
    ready_event = (await log.load("chip-1"))[-1].event
    assert ready_event.occurred_at == NOW  # decided again at the original time
