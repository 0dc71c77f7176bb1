"""The activator saga, pure: given events, when an outcome, then events and the next action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from julia_chips.activation.model import steps as act
from julia_chips.activation.model.saga import Saga, current_step, decide, evolve, fold, next_action
from julia_chips.contract import activation as ev
from julia_chips.contract.activation import Step
from julia_chips.contract.codec import ENCODER

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
POLICY = act.SagaPolicy(max_attempts=2, wait_timeouts={Step.CODE: 60, Step.CONNECTION: 30})
CHIP = "c1"


def apply(saga: Saga, *outcomes: act.Outcome, now: datetime = NOW) -> Saga:
    for outcome in outcomes:
        for event in decide(saga, outcome, now, POLICY):
            saga = evolve(saga, event)
    return saga


HAPPY = (act.Requested(ddd=11), act.ChipMarked(),
         act.NumberBought(phone_number="+5511900000001", salvy_account_id="pa_1"),
         act.HostChosen(host="vps-1"), act.InstanceReady(instance="chip-c1"),
         act.CodeSent(sms_after_seq=7), act.CodeArrived(sms_id="sms_1", sms_seq=8),
         act.Registered(obs_after_seq=9), act.Opened(), act.ChipCompleted())


def test_happy_path_asks_for_each_step_in_order() -> None:
    saga = Saga(chip_id=CHIP)
    seen = []
    for outcome in HAPPY:
        saga = apply(saga, outcome)
        seen.append(type(next_action(saga, POLICY, NOW)).__name__)
    assert seen == ["MarkActivating", "ObtainNumber", "AllocateHost", "CreateInstance",
                    "RequestCode", "AwaitCode", "Register", "AwaitConnection", "Complete",
                    "Finished"]
    assert saga.phase == "completed"


def test_waits_carry_the_cursor_and_the_deadline() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:6])
    action = next_action(saga, POLICY, NOW + timedelta(seconds=5))
    assert action == act.AwaitCode(salvy_account_id="pa_1", after_seq=7,
                                   deadline=NOW + timedelta(seconds=60))


def test_completing_tells_the_chip_the_number_bought() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:-1])
    assert next_action(saga, POLICY, NOW) == act.Complete(
        instance="chip-c1", host="vps-1", phone_number="+5511900000001",
        salvy_account_id="pa_1")


def test_replay_gives_the_same_state_and_a_repeat_outcome_adds_nothing() -> None:
    events: list[ev.AnyActivationEvent] = []
    saga = Saga(chip_id=CHIP)
    for outcome in HAPPY[:5]:
        new = decide(saga, outcome, NOW, POLICY)
        events += new
        for event in new:
            saga = evolve(saga, event)
    assert fold(CHIP, events) == saga
    assert decide(saga, act.Requested(), NOW, POLICY) == []
    assert len({e.event_id for e in events}) == len(events)


def test_given_number_skips_the_purchase() -> None:
    saga = apply(Saga(chip_id=CHIP), act.Requested(phone_number="+5511900000002",
                                                   salvy_account_id="pa_2"), act.ChipMarked())
    assert current_step(saga) is Step.HOST


def test_retryable_failure_backs_off_then_gives_up_naming_the_step() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:6])
    saga = apply(saga, act.StepFailed(step=Step.CODE, reason="no SMS", drop_code=True))
    assert saga.attempts[Step.CODE] == 1 and not saga.code_requested
    assert next_action(saga, POLICY, NOW) == act.WaitUntil(until=NOW + timedelta(seconds=1))
    later = NOW + timedelta(seconds=2)
    assert isinstance(next_action(saga, POLICY, later), act.RequestCode)
    saga = apply(saga, act.StepFailed(step=Step.CODE, reason="no SMS"), now=later)
    assert saga.phase == "abandoned" and saga.failed_step is Step.CODE
    assert "gave up after 2 attempts" in (saga.failure_reason or "")
    assert next_action(saga, POLICY, later) == act.ReleaseHost(
        host="vps-1", instance="chip-c1", phone_number="+5511900000001")
    saga = apply(saga, act.HostFreed())
    report = next_action(saga, POLICY, later)
    assert isinstance(report, act.ReportFailure) and report.step is Step.CODE and report.retryable
    saga = apply(saga, act.FailureSent())
    assert saga.phase == "closed" and isinstance(next_action(saga, POLICY, later), act.Finished)


def test_terminal_failure_is_never_retried() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:7])
    saga = apply(saga, act.StepFailed(step=Step.REGISTER, reason="133016", retryable=False))
    assert saga.phase == "abandoned" and not saga.failure_retryable
    assert saga.attempts == {}


def test_lost_host_is_excluded_and_the_instance_redone() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:5])
    saga = apply(saga, act.StepFailed(step=Step.CODE, reason="host down", drop_host=True))
    assert saga.host is None and saga.instance is None
    action = next_action(saga, POLICY, NOW + timedelta(minutes=1))
    assert action == act.AllocateHost(exclude=("vps-1",))


def test_outcome_for_the_wrong_step_is_a_runner_bug() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:2])
    try:
        decide(saga, act.Opened(), NOW, POLICY)
    except Exception as exc:
        assert "number" in str(exc)
    else:
        raise AssertionError("accepted an outcome out of order")


def test_events_round_trip_on_the_wire() -> None:
    saga = Saga(chip_id=CHIP)
    for outcome in HAPPY:
        for event in decide(saga, outcome, NOW, POLICY):
            assert ev.decode_activation_event(ENCODER.encode(event)) == event
            saga = evolve(saga, event)


CODE_LOST = (*HAPPY[:8], act.StepFailed(step=Step.CONNECTION, reason="not open"),
             act.StepFailed(step=Step.CONNECTION, reason="not open"), act.HostFreed(),
             act.FailureSent())


def test_a_retried_saga_redoes_the_link_on_a_new_host_with_the_same_number() -> None:
    closed = apply(Saga(chip_id=CHIP), *CODE_LOST)
    assert closed.phase == "closed" and closed.host is None
    resumed = apply(closed, act.RetryAsked())
    assert resumed.phase == "running" and resumed.attempts == {}
    assert next_action(resumed, POLICY, NOW) == act.AllocateHost(exclude=())
    done = apply(resumed, act.HostChosen(host="vps-2"), act.InstanceReady(instance="chip-c1"))
    assert isinstance(next_action(done, POLICY, NOW), act.RequestCode)  # the old code is gone
    assert done.phone_number == "+5511900000001" and done.salvy_account_id == "pa_1"


def test_a_retry_of_a_saga_that_was_not_abandoned_changes_nothing() -> None:
    running = apply(Saga(chip_id=CHIP), *HAPPY[:4])
    assert decide(running, act.RetryAsked(), NOW, POLICY) == []
    completed = apply(Saga(chip_id=CHIP), *HAPPY)
    assert decide(completed, act.RetryAsked(), NOW, POLICY) == []


def test_retiring_releases_only_what_is_still_held() -> None:
    closed = apply(Saga(chip_id=CHIP), *CODE_LOST, act.RetireSeen(banned=True))
    assert next_action(closed, POLICY, NOW) == act.CancelNumber(salvy_account_id="pa_1",
                                                                banned=True)
    after = apply(closed, act.Released(step=Step.CANCEL_NUMBER))
    assert next_action(after, POLICY, NOW) == act.FinishRetirement()  # host freed before
    assert apply(after, act.RetirementDone()).phase == "retired"


def test_a_release_that_keeps_failing_is_skipped_and_the_next_goes_on() -> None:
    retiring = apply(Saga(chip_id=CHIP), *HAPPY, act.RetireSeen(banned=False))
    failed = act.StepFailed(step=Step.CANCEL_NUMBER, reason="salvy down")
    first = apply(retiring, failed)
    assert isinstance(next_action(first, POLICY, NOW), act.WaitUntil)
    [skipped] = decide(first, failed, NOW, POLICY)
    assert isinstance(skipped, ev.ReleaseSkipped) and skipped.step is Step.CANCEL_NUMBER
    assert next_action(evolve(first, skipped), POLICY, NOW + timedelta(minutes=5)) == \
        act.DeleteInstance(host="vps-1", instance="chip-c1")


def test_retiring_a_running_saga_stops_its_activation() -> None:
    running = apply(Saga(chip_id=CHIP), *HAPPY[:5], act.RetireSeen(banned=False))
    assert running.phase == "retiring"
    assert isinstance(next_action(running, POLICY, NOW), act.CancelNumber)
    assert decide(running, act.RetireSeen(banned=False), NOW, POLICY) == []


def test_the_saga_keeps_where_the_code_is_not_the_code_and_old_sagas_still_register() -> None:
    saga = apply(Saga(chip_id=CHIP), *HAPPY[:7])
    [received] = decide(apply(Saga(chip_id=CHIP), *HAPPY[:6]), HAPPY[6], NOW, POLICY)
    assert b'"code":"' not in ENCODER.encode(received)
    register = next_action(saga, POLICY, NOW)
    assert isinstance(register, act.Register)
    assert (register.code, register.sms_seq, register.salvy_account_id) == (None, 8, "pa_1")
    stored_before = ev.CodeReceived(event_id="e", chip_id=CHIP, occurred_at=NOW,
                                    sms_id="sms_1", code="123456")
    old = evolve(apply(Saga(chip_id=CHIP), *HAPPY[:6]), stored_before)
    assert current_step(old) is Step.REGISTER
    assert next_action(old, POLICY, NOW).code == "123456"  # type: ignore[union-attr]
