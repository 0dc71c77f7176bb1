"""Commands that drive a chip into each state, for the table and property tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from julia_chips.chip.model.lifecycle import ChipState, decide, evolve
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.warmer.model.policy import WarmupPolicy

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def cid() -> str:
    return f"c{next(_ids)}"


def sample(command_type: type[cmd.ChipCommand], state: ChipState | None = None) -> cmd.AnyChipCommand:
    """A valid command of each type (CloseWarmDay names the open day)."""
    day = state.warm_day if state and state.warm_day else 1
    samples: dict[type[cmd.ChipCommand], cmd.AnyChipCommand] = {
        cmd.Provision: cmd.Provision(command_id=cid(), phone_number="+5511999990000", ddd=11),
        cmd.StartActivation: cmd.StartActivation(command_id=cid(), host="vps-1"),
        cmd.CompleteActivation: cmd.CompleteActivation(command_id=cid(), instance="i-1", host="vps-1"),
        cmd.FailActivation: cmd.FailActivation(command_id=cid(), reason="sms timeout", retryable=True),
        cmd.ObserveTraffic: cmd.ObserveTraffic(command_id=cid(), sent=20, delivered=19, read=15,
                                               replied=5, failed=0, received=6),
        cmd.CloseWarmDay: cmd.CloseWarmDay(command_id=cid(), day_number=day),
        cmd.PutInService: cmd.PutInService(command_id=cid()),
        cmd.TakeOutOfService: cmd.TakeOutOfService(command_id=cid(), reason="pool over limit"),
        cmd.Cool: cmd.Cool(command_id=cid(), reason="delivery dropped"),
        cmd.Resume: cmd.Resume(command_id=cid()),
        cmd.ReportBan: cmd.ReportBan(command_id=cid(), reason="logged out", evidence="close 401"),
        cmd.Reinstate: cmd.Reinstate(command_id=cid()),
        cmd.Retire: cmd.Retire(command_id=cid(), reason="operator"),
        cmd.RetryActivation: cmd.RetryActivation(command_id=cid()),
        cmd.RecordRelease: cmd.RecordRelease(command_id=cid(), resource="cancel_number",
                                             detail="salvy account acc-1 cancelled"),
        cmd.Relink: cmd.Relink(command_id=cid(), reason="logged out",
                               evidence="evolution connection.update=401"),
        cmd.StartRelink: cmd.StartRelink(command_id=cid(), attempt=1, pairing_code="ABCD1234"),
        cmd.CompleteRelink: cmd.CompleteRelink(command_id=cid()),
        cmd.FailRelink: cmd.FailRelink(command_id=cid(), attempt=1, reason="code expired"),
    }
    return samples[command_type]


ONE_GOOD_DAY = WarmupPolicy(min_days=1)


def run(state: ChipState, *commands: cmd.AnyChipCommand,
        policy: WarmupPolicy = ONE_GOOD_DAY) -> ChipState:
    for command in commands:
        for event in decide(state, command, NOW, policy):
            state = evolve(state, event)
    return state


def chip_in(status: Status | None, chip_id: str = "chip-1") -> ChipState:
    """A chip brought to `status` through the lifecycle (min_days=1 makes one good day enough)."""
    state = ChipState(chip_id=chip_id)
    if status is None:
        return state
    path: dict[Status, list[type[cmd.ChipCommand]]] = {
        Status.PROVISIONING: [cmd.Provision],
        Status.ACTIVATING: [cmd.Provision, cmd.StartActivation],
        Status.WARMING: [cmd.Provision, cmd.StartActivation, cmd.CompleteActivation],
        Status.READY: [cmd.Provision, cmd.StartActivation, cmd.CompleteActivation,
                       cmd.ObserveTraffic, cmd.CloseWarmDay],
        Status.ACTIVE: [cmd.Provision, cmd.StartActivation, cmd.CompleteActivation,
                        cmd.ObserveTraffic, cmd.CloseWarmDay, cmd.PutInService],
        Status.COOLING: [cmd.Provision, cmd.StartActivation, cmd.CompleteActivation, cmd.Cool],
        Status.BANNED: [cmd.Provision, cmd.StartActivation, cmd.CompleteActivation,
                        cmd.ReportBan],
        Status.RELINKING: [cmd.Provision, cmd.StartActivation, cmd.CompleteActivation,
                           cmd.Relink],
        Status.RETIRED: [cmd.Provision, cmd.Retire],
    }
    for command_type in path[status]:
        state = run(state, sample(command_type, state))
    assert state.status is status
    return state
