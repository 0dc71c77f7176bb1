"""Shared by the unit and integration property tests: random command sequences for a chip."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from julia_chips.chip.actor import ChipActor
from julia_chips.chip.event_log import ChipEventLog
from julia_chips.chip.model.lifecycle import MOVES, evolve, fold
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from tests.unit.chip_builders import NOW

counts = st.integers(min_value=0, max_value=60)
commands = st.one_of(
    st.builds(cmd.Provision, command_id=st.just(""), ddd=st.integers(11, 99)),
    st.builds(cmd.StartActivation, command_id=st.just("")),
    st.builds(cmd.CompleteActivation, command_id=st.just(""), instance=st.just("i"),
              host=st.just("h")),
    st.builds(cmd.FailActivation, command_id=st.just(""), reason=st.just("r"),
              retryable=st.booleans()),
    st.builds(cmd.ObserveTraffic, command_id=st.just(""), sent=counts, delivered=counts,
              read=counts, replied=counts, failed=counts, received=counts),
    st.builds(cmd.CloseWarmDay, command_id=st.just(""), day_number=st.integers(1, 4)),
    st.builds(cmd.PutInService, command_id=st.just("")),
    st.builds(cmd.TakeOutOfService, command_id=st.just(""), reason=st.just("r")),
    st.builds(cmd.Cool, command_id=st.just(""), reason=st.just("r")),
    st.builds(cmd.Resume, command_id=st.just("")),
    st.builds(cmd.ReportBan, command_id=st.just(""), reason=st.just("r"), evidence=st.just("e")),
    st.builds(cmd.Reinstate, command_id=st.just("")),
    st.builds(cmd.Retire, command_id=st.just(""), reason=st.just("r")),
)
# Many in a row: random sequences rarely walk far down the lifecycle otherwise.
command_sequences = st.lists(commands, min_size=1, max_size=40)


async def drive_and_check(actor: ChipActor, log: ChipEventLog,
                          sequence: list[cmd.AnyChipCommand]) -> None:
    """Feed the commands; then the stored history must rebuild the actor's state exactly
    and contain only moves the table allows."""
    for n, command in enumerate(sequence):
        numbered = type(command)(**{**_fields(command), "command_id": f"k{n}"})
        await actor.handle(numbered, NOW + timedelta(hours=n))
    stored = await log.load(actor.chip_id)
    rebuilt = fold(actor.chip_id, [s.event for s in stored])
    assert rebuilt == actor.state
    previous: Status | None = None
    replay = fold(actor.chip_id, [])
    for s in stored:
        replay = evolve(replay, s.event)
        if replay.status != previous and previous is not None:
            back = previous is Status.COOLING and replay.status is not None
            assert replay.status in MOVES[previous] or back, f"{previous} -> {replay.status}"
        previous = replay.status


def _fields(command: cmd.ChipCommand) -> dict[str, object]:
    return {f: getattr(command, f) for f in command.__struct_fields__}
