"""One contract, two implementations: the in-memory fake and the JetStream event log."""

from __future__ import annotations

import pytest
from nats.js.client import JetStreamContext

from julia_chips.chip.event_log import ChipEventLog, JetStreamChipEventLog
from julia_chips.chip.model.lifecycle import decide
from julia_chips.contract import chip_commands as cmd
from julia_chips.jetstream.event_stream import WriteConflict
from tests.conftest import new_chip_id
from tests.fakes import InMemoryChipEventLog
from tests.unit.chip_builders import NOW, chip_in, run, sample


@pytest.fixture(params=["memory", "jetstream"])
def event_log(request: pytest.FixtureRequest, js: JetStreamContext) -> ChipEventLog:
    return InMemoryChipEventLog() if request.param == "memory" else JetStreamChipEventLog(js)


def provisioned(chip_id: str, command_id: str = "p1") -> list:  # type: ignore[type-arg]
    state = chip_in(None, chip_id)
    return decide(state, cmd.Provision(command_id=command_id), NOW)


def started(chip_id: str) -> list:  # type: ignore[type-arg]
    state = run(chip_in(None, chip_id), cmd.Provision(command_id="p1"))
    return decide(state, sample(cmd.StartActivation), NOW)


async def test_append_then_load_in_order(event_log: ChipEventLog) -> None:
    chip = new_chip_id()
    assert await event_log.last_seq(chip) == 0
    [first] = await event_log.append(chip, provisioned(chip), 0)
    [second] = await event_log.append(chip, started(chip), first)
    loaded = await event_log.load(chip)
    assert [s.seq for s in loaded] == [first, second] and second > first
    assert type(loaded[1].event).__name__ == "ActivationStarted"
    assert [s.seq for s in await event_log.load(chip, after_seq=first)] == [second]
    assert await event_log.last_seq(chip) == second


async def test_stale_expected_sequence_is_a_conflict(event_log: ChipEventLog) -> None:
    chip = new_chip_id()
    [first] = await event_log.append(chip, provisioned(chip), 0)
    with pytest.raises(WriteConflict):
        await event_log.append(chip, started(chip), 0)
    assert [s.seq for s in await event_log.load(chip)] == [first]


async def test_repeated_event_id_is_stored_once(event_log: ChipEventLog) -> None:
    """A retry after a lost ack: with its old expected sequence it is a conflict (the actor
    then finds the event in the tail); with the current one, the msg id dedupes it."""
    chip = new_chip_id()
    events = provisioned(chip)
    [first] = await event_log.append(chip, events, 0)
    with pytest.raises(WriteConflict):
        await event_log.append(chip, events, 0)
    [again] = await event_log.append(chip, events, first)
    assert again == first
    assert len(await event_log.load(chip)) == 1


async def test_chips_do_not_see_each_other(event_log: ChipEventLog) -> None:
    a, b = new_chip_id(), new_chip_id()
    await event_log.append(a, provisioned(a), 0)
    # b's expected sequence is its own (0), whatever a did to the stream.
    await event_log.append(b, provisioned(b), 0)
    assert len(await event_log.load(a)) == len(await event_log.load(b)) == 1
