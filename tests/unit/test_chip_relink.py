"""A chip the gateway logged out (401), pure: what the monitor asks, what the chip decides,
what the saga does, and what the read model shows and forgets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from julia_chips.activation.model import steps as act
from julia_chips.activation.model.saga import Saga, decide, evolve, next_action
from julia_chips.chip.model.lifecycle import ChipRuleBroken, ChipState
from julia_chips.chip.model.lifecycle import decide as chip_decide
from julia_chips.chip.model.lifecycle import evolve as chip_evolve
from julia_chips.contract import activation as sev
from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import Step
from julia_chips.contract.chip import Status
from julia_chips.health.model.monitoring import decide as monitor_decide
from julia_chips.projections.rows.chip import ChipRow, apply, review_reason
from tests.unit.chip_builders import NOW, chip_in, run, sample
from tests.unit.health_builders import apply as follow_event
from tests.unit.health_builders import closed, fold, healthy_chip
from tests.unit.test_activation_saga import HAPPY
from tests.unit.test_activation_saga import apply as saga_apply

RELINK = cmd.Relink(command_id="relink", reason="logged out", evidence="close 401")
POLICY = act.SagaPolicy(attempts_by_step={Step.RELINK: 2},
                        wait_timeouts={Step.RELINK: 60.0}, backoff_base=1.0)


def events_of(state: ChipState, command: cmd.AnyChipCommand) -> list[ev.AnyChipEvent]:
    return chip_decide(state, command, NOW)


# The monitor -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.WARMING, Status.READY, Status.ACTIVE, Status.COOLING])
def test_a_401_close_asks_for_a_relink_not_a_rest_nor_a_ban(status: Status) -> None:
    [command] = monitor_decide(fold(healthy_chip(status), closed(401)), NOW)
    assert isinstance(command, cmd.Relink) and "401" in command.evidence


def test_a_relinking_chip_is_left_to_the_activator_unless_a_ban_is_proven() -> None:
    relinking = healthy_chip(Status.RELINKING)
    assert monitor_decide(fold(relinking, closed(401)), NOW) == []
    assert monitor_decide(fold(relinking, closed(None, "connecting")), NOW) == []
    [ban] = monitor_decide(fold(relinking, closed(403)), NOW)
    assert isinstance(ban, cmd.ReportBan)


def test_the_relink_request_spends_the_finding() -> None:
    health = fold(healthy_chip(Status.ACTIVE), closed(401))
    [event] = chip_decide(health.chip, RELINK, NOW)
    after = follow_event(health, event)
    assert after.finding is None and monitor_decide(after, NOW) == []


# The chip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.WARMING, Status.READY, Status.ACTIVE])
def test_a_relinked_chip_is_back_where_it_was(status: Status) -> None:
    chip = chip_in(status)
    relinking = run(chip, RELINK)
    assert (relinking.status, relinking.relink_from) == (Status.RELINKING, status)
    started = run(relinking, cmd.StartRelink(command_id="s1", attempt=1, pairing_code="AB12CD34"))
    assert started.relink_attempt == 1
    [back] = events_of(started, cmd.CompleteRelink(command_id="done"))
    assert isinstance(back, ev.Relinked) and back.status is status
    after = chip_evolve(started, back)
    assert (after.status, after.relink_from, after.relink_attempt) == (status, None, 0)
    assert after.daily_cap == chip.daily_cap and after.warm_day == chip.warm_day


def test_a_resting_chip_relinked_rests_on_until_its_rest_ends() -> None:
    cooling = chip_in(Status.COOLING)
    after = run(cooling, RELINK, cmd.StartRelink(command_id="s", attempt=1, qr="2@abc"),
                cmd.CompleteRelink(command_id="c"))
    assert after.status is Status.COOLING
    assert (after.cooled_from, after.cooling_until) == (cooling.cooled_from,
                                                        cooling.cooling_until)


def test_failed_tries_keep_relinking_and_the_last_cools_for_review_naming_the_logout() -> None:
    relinking = run(chip_in(Status.ACTIVE), RELINK)
    [failed] = events_of(relinking, cmd.FailRelink(command_id="f1", attempt=1, reason="expired"))
    assert isinstance(failed, ev.RelinkFailed)
    assert chip_evolve(relinking, failed).status is Status.RELINKING
    last = cmd.FailRelink(command_id="f3", attempt=3, reason="not linked", give_up=True)
    failed, cooled = events_of(relinking, last)
    assert isinstance(failed, ev.RelinkFailed) and isinstance(cooled, ev.Cooled)
    assert cooled.until is None and cooled.previous_status is Status.ACTIVE
    assert "logged out (401)" in cooled.reason and "3 tries" in cooled.reason
    after = run(relinking, last)
    assert (after.status, after.relink_from) == (Status.COOLING, None)
    assert run(after, sample(cmd.Resume)).status is Status.ACTIVE


def test_a_resting_chip_that_gives_up_rests_for_review_as_it_was_cooled_from() -> None:
    cooling = chip_in(Status.COOLING)  # cooled from warming
    after = run(cooling, RELINK, cmd.FailRelink(command_id="f", attempt=1, reason="x",
                                                give_up=True))
    assert (after.status, after.cooled_from, after.cooling_until) == (
        Status.COOLING, Status.WARMING, None)


def test_relink_moves_are_refused_outside_a_relink() -> None:
    for command in (cmd.StartRelink(command_id="s", attempt=1),
                    cmd.CompleteRelink(command_id="c"),
                    cmd.FailRelink(command_id="f", attempt=1, reason="x")):
        with pytest.raises(ChipRuleBroken) as refused:
            events_of(chip_in(Status.ACTIVE), command)
        assert refused.value.state == "active"
    with pytest.raises(ChipRuleBroken):
        events_of(chip_in(Status.ACTIVATING), RELINK)
    relinking = run(chip_in(Status.READY), RELINK)
    with pytest.raises(ChipRuleBroken) as refused:
        events_of(relinking, RELINK)
    assert refused.value.allowed == ["banned", "cooling", "ready", "retired"]
    assert run(relinking, sample(cmd.ReportBan)).status is Status.BANNED


def test_an_abandoned_activation_records_what_it_gave_back_while_activating() -> None:
    activating = chip_in(Status.ACTIVATING)
    release = cmd.RecordRelease(command_id="r", resource="free_slot", detail="slot freed")
    [event] = events_of(activating, release)
    assert isinstance(event, ev.ResourceReleased)
    assert chip_evolve(activating, event).status is Status.ACTIVATING


# The read model ----------------------------------------------------------------------------


def _row_after(*commands: cmd.AnyChipCommand) -> ChipRow:
    state, row, seq = ChipState(chip_id="chip-1"), None, 0
    for command in (cmd.Provision(command_id="p", phone_number="+5511999990000"),
                    cmd.StartActivation(command_id="s"),
                    cmd.CompleteActivation(command_id="c", instance="i", host="h"),
                    *commands):
        for event in chip_decide(state, command, NOW):
            seq += 1
            state, row = chip_evolve(state, event), apply(row, seq, event)
    assert row is not None
    return row


def test_the_row_shows_the_code_while_the_try_lasts_and_forgets_it_after() -> None:
    offered = _row_after(RELINK, cmd.StartRelink(command_id="s1", attempt=1,
                                                 pairing_code="AB12CD34"))
    assert (offered.status, offered.relink_attempt, offered.relink_pairing_code) == (
        "relinking", 1, "AB12CD34")
    assert offered.relink_since == NOW and offered.relink_reason == "logged out"
    failed = _row_after(RELINK, cmd.StartRelink(command_id="s1", attempt=1, qr="2@q"),
                        cmd.FailRelink(command_id="f1", attempt=1, reason="expired"))
    assert (failed.relink_attempt, failed.relink_pairing_code, failed.relink_qr) == (
        1, None, None)
    linked = _row_after(RELINK, cmd.StartRelink(command_id="s1", attempt=1, pairing_code="X1"),
                        cmd.CompleteRelink(command_id="done"))
    assert linked.status == "warming"
    assert (linked.relink_since, linked.relink_pairing_code, linked.relink_attempt) == (
        None, None, 0)
    given_up = _row_after(RELINK, cmd.StartRelink(command_id="s1", attempt=1, pairing_code="X"),
                          cmd.FailRelink(command_id="f", attempt=1, reason="x", give_up=True))
    assert given_up.relink_pairing_code is None and given_up.relink_since is None
    assert "logged out (401)" in (review_reason(given_up) or "")


# The saga ----------------------------------------------------------------------------------


def _completed(registrar: act.Outcome = HAPPY[0]) -> Saga:
    return saga_apply(Saga(chip_id="c1"), registrar, *HAPPY[1:])


def relink_apply(saga: Saga, *outcomes: act.Outcome, now: object = NOW) -> Saga:
    for outcome in outcomes:
        for event in decide(saga, outcome, now, POLICY):  # type: ignore[arg-type]
            saga = evolve(saga, event)
    return saga


def test_a_logged_out_chip_is_offered_a_pairing_code_by_number_and_completes_on_open() -> None:
    saga = relink_apply(_completed(act.Requested(ddd=11, registrar="vps")), act.RelinkSeen())
    assert saga.phase == "relinking"
    assert decide(saga, act.RelinkSeen(), NOW, POLICY) == []  # a redelivered event
    assert next_action(saga, POLICY, NOW) == act.OfferLink(
        instance="chip-c1", host="vps-1", phone_number="+5511900000001", attempt=1)
    saga = relink_apply(saga, act.LinkIssued(attempt=1, obs_after_seq=40))
    assert next_action(saga, POLICY, NOW) == act.AwaitRelink(
        instance="chip-c1", host="vps-1", after_seq=40, deadline=NOW + timedelta(seconds=60))
    [done] = decide(saga, act.LinkOpened(), NOW, POLICY)
    assert isinstance(done, sev.RelinkCompleted)
    saga = evolve(saga, done)
    assert saga.phase == "completed" and saga.relink_attempt == 0
    assert isinstance(next_action(saga, POLICY, NOW), act.Finished)


def test_a_cloud_api_instance_is_offered_a_qr() -> None:
    saga = relink_apply(_completed(), act.RelinkSeen())
    action = next_action(saga, POLICY, NOW)
    assert isinstance(action, act.OfferLink) and action.phone_number is None


def test_each_failed_try_is_told_to_the_chip_and_the_last_gives_up() -> None:
    saga = relink_apply(_completed(), act.RelinkSeen(), act.LinkIssued(attempt=1, obs_after_seq=1))
    expired = act.StepFailed(step=Step.RELINK, reason="not linked")
    saga = relink_apply(saga, expired)
    assert next_action(saga, POLICY, NOW) == act.ReportRelinkFailure(
        attempt=1, reason="not linked", give_up=False)
    saga = relink_apply(saga, act.LinkFailureSent())
    assert next_action(saga, POLICY, NOW) == act.WaitUntil(until=NOW + timedelta(seconds=1))
    later = NOW + timedelta(seconds=2)
    action = next_action(saga, POLICY, later)
    assert isinstance(action, act.OfferLink) and action.attempt == 2
    saga = relink_apply(saga, act.LinkIssued(attempt=2, obs_after_seq=5), expired, now=later)
    assert next_action(saga, POLICY, later) == act.ReportRelinkFailure(
        attempt=2, reason="not linked", give_up=True)
    [reported] = decide(saga, act.LinkFailureSent(), later, POLICY)
    assert isinstance(reported, sev.LinkFailureReported) and reported.give_up
    saga = evolve(saga, reported)
    assert saga.phase == "completed" and saga.relink_failure is None


def test_a_failed_connect_counts_as_a_try_and_a_chip_refusal_gives_up() -> None:
    saga = relink_apply(_completed(), act.RelinkSeen(),
                        act.StepFailed(step=Step.RELINK, reason="gateway down"))
    assert (saga.relink_attempt, saga.relink_give_up) == (1, False)
    refused = relink_apply(_completed(), act.RelinkSeen(),
                           act.StepFailed(step=Step.RELINK, reason="chip refused",
                                          retryable=False))
    assert refused.relink_give_up


def test_a_relink_is_only_for_a_linked_saga_and_a_retirement_takes_over() -> None:
    running = saga_apply(Saga(chip_id="c1"), *HAPPY[:4])
    assert decide(running, act.RelinkSeen(), NOW, POLICY) == []
    relinking = relink_apply(_completed(), act.RelinkSeen())
    retiring = relink_apply(relinking, act.RetireSeen(banned=False))
    assert retiring.phase == "retiring"
    assert isinstance(next_action(retiring, POLICY, NOW), act.CancelNumber)
