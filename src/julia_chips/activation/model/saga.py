"""The Chip Activator saga as pure functions (DESIGN.md, "Actors").

`next_action` reads the folded state and says what the runner must do; the runner does it
and reports an `Outcome`; `decide` turns that into events; `evolve` folds them. A crashed
runner refolds the events and gets the same next action, so completed steps never repeat.
Failures are counted per step: a retryable one backs off and retries up to the policy's
bound, anything else abandons the saga, which then frees its host and tells the chip why.
A retired chip's saga turns to retiring, whatever its phase: it cancels the number, deletes
the instance and frees the host slot, each step with its own bounded retries; a step that
fails them all is recorded as skipped, so one stuck release never holds up the others.
A completed saga whose chip the gateway logged out turns to relinking: it offers a new
pairing code (or QR) up to the policy's tries for Step.RELINK, each told to the chip, and
is completed again once the instance is open or the last try has failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from julia_chips.activation.model import steps as act
from julia_chips.contract import activation as ev
from julia_chips.contract.activation import RegistrarKind, Step, instance_name

Phase = Literal["new", "running", "completed", "abandoned", "closed", "retiring", "retired",
                "relinking"]
RELEASE_STEPS = (Step.CANCEL_NUMBER, Step.DELETE_INSTANCE, Step.FREE_SLOT)


class SagaRuleBroken(Exception):
    """An outcome that makes no sense in the saga's phase (a runner bug, not bad luck)."""


class Saga(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    phase: Phase = "new"
    registrar: RegistrarKind = "cloud_api"
    ddd: int | None = None
    chip_activating: bool = False
    phone_number: str | None = None
    salvy_account_id: str | None = None
    host: str | None = None
    lost_hosts: tuple[str, ...] = ()
    instance: str | None = None
    code_requested: bool = False
    sms_after_seq: int = 0
    code: str | None = None  # only from sagas stored before codes were no longer kept
    sms_id: str | None = None  # the SMS with the code: the code step is done
    sms_seq: int = 0
    registered: bool = False
    obs_after_seq: int = 0
    connected: bool = False
    attempts: dict[Step, int] = {}
    retry_at: datetime | None = None
    step_started_at: datetime | None = None  # when the wait of the current step began
    failed_step: Step | None = None
    failure_reason: str | None = None
    failure_retryable: bool = True
    retired_banned: bool = False  # retired as banned: the number's cancel says so
    released: tuple[Step, ...] = ()  # retirement steps done or skipped
    relink_attempt: int = 0  # relink tries offered or failed so far
    link_offered: bool = False  # the current try's code was given to the chip
    link_after_seq: int = 0  # GATEWAY_OBS sequence the current try's `open` comes after
    relink_failure: str | None = None  # a failed try not yet told to the chip
    relink_give_up: bool = False  # ... and it was the last
    version: int = 0  # events applied


def current_step(saga: Saga) -> Step:
    """The first step not done yet (of the retirement, once retiring)."""
    if saga.phase == "retiring":
        return _release_step(saga)
    if saga.phase == "relinking":
        return Step.RELINK
    checks = ((saga.chip_activating, Step.START), (saga.phone_number, Step.NUMBER),
              (saga.host, Step.HOST), (saga.instance, Step.INSTANCE),
              (saga.sms_id or saga.code, Step.CODE),
              (saga.registered, Step.REGISTER), (saga.connected, Step.CONNECTION))
    for done, step in checks:
        if not done:
            return step
    return Step.COMPLETE


def _release_step(saga: Saga) -> Step:
    """The first retirement step with something still held; COMPLETE when none is left."""
    held = {Step.CANCEL_NUMBER: saga.salvy_account_id is not None,
            Step.DELETE_INSTANCE: saga.instance is not None and saga.host is not None,
            Step.FREE_SLOT: saga.host is not None}
    for step in RELEASE_STEPS:
        if held[step] and step not in saga.released:
            return step
    return Step.COMPLETE


def next_action(saga: Saga, policy: act.SagaPolicy, now: datetime) -> act.Action:
    """What the runner must do now."""
    if saga.phase in ("new", "completed", "closed", "retired"):
        return act.Finished()
    if saga.phase == "abandoned":
        return _wind_down(saga)
    if saga.retry_at is not None and now < saga.retry_at:
        return act.WaitUntil(until=saga.retry_at)
    if saga.phase == "retiring":
        return _release_action(saga, current_step(saga))
    if saga.phase == "relinking":
        return _relink_action(saga, policy, now)
    return _step_action(saga, current_step(saga), policy, now)


def _relink_action(saga: Saga, policy: act.SagaPolicy, now: datetime) -> act.Action:
    instance, host = saga.instance or "", saga.host or ""
    if saga.relink_failure is not None:
        return act.ReportRelinkFailure(attempt=saga.relink_attempt, reason=saga.relink_failure,
                                       give_up=saga.relink_give_up)
    if not saga.link_offered:
        phone = saga.phone_number if saga.registrar == "vps" else None  # Baileys pairs by number
        return act.OfferLink(instance=instance, host=host, phone_number=phone,
                             attempt=saga.relink_attempt + 1)
    return act.AwaitRelink(instance=instance, host=host, after_seq=saga.link_after_seq,
                           deadline=(saga.step_started_at or now)
                           + policy.wait_timeout(Step.RELINK))


def _release_action(saga: Saga, step: Step) -> act.Action:
    host, instance = saga.host or "", saga.instance or ""
    match step:
        case Step.CANCEL_NUMBER:
            return act.CancelNumber(salvy_account_id=saga.salvy_account_id or "",
                                    banned=saga.retired_banned)
        case Step.DELETE_INSTANCE:
            return act.DeleteInstance(host=host, instance=instance)
        case Step.FREE_SLOT:
            return act.FreeSlot(host=host, phone_number=saga.phone_number)
    return act.FinishRetirement()


def _step_action(saga: Saga, step: Step, policy: act.SagaPolicy, now: datetime) -> act.Action:
    phone, account, host = saga.phone_number or "", saga.salvy_account_id or "", saga.host or ""
    instance, started = saga.instance or "", saga.step_started_at or now
    match step:
        case Step.START:
            return act.MarkActivating()
        case Step.NUMBER:
            return act.ObtainNumber(ddd=saga.ddd, idempotency_key=saga.chip_id)
        case Step.HOST:
            return act.AllocateHost(exclude=saga.lost_hosts)
        case Step.INSTANCE:
            return act.CreateInstance(name=instance_name(saga.chip_id), host=host,
                                      phone_number=phone, registrar=saga.registrar)
        case Step.CODE if not saga.code_requested:
            return act.RequestCode(phone_number=phone, salvy_account_id=account, host=host,
                                   registrar=saga.registrar)
        case Step.CODE:
            return act.AwaitCode(salvy_account_id=account, after_seq=saga.sms_after_seq,
                                 deadline=started + policy.wait_timeout(Step.CODE))
        case Step.REGISTER:
            return act.Register(phone_number=phone, salvy_account_id=account,
                                sms_seq=saga.sms_seq, code=saga.code, host=host,
                                instance=instance, registrar=saga.registrar)
        case Step.CONNECTION:
            return act.AwaitConnection(instance=instance, host=host,
                                       after_seq=saga.obs_after_seq,
                                       deadline=started + policy.wait_timeout(step))
    return act.Complete(instance=instance, host=host, phone_number=phone,
                        salvy_account_id=account)


def _wind_down(saga: Saga) -> act.Action:
    if saga.host is not None:
        return act.ReleaseHost(host=saga.host, instance=saga.instance,
                               phone_number=saga.phone_number)
    return act.ReportFailure(step=saga.failed_step or Step.START,
                             reason=saga.failure_reason or "unknown",
                             retryable=saga.failure_retryable)


def decide(saga: Saga, outcome: act.Outcome, now: datetime,
           policy: act.SagaPolicy) -> list[ev.AnyActivationEvent]:
    """The saga events `outcome` causes (none for a repeat of something already recorded);
    raises SagaRuleBroken for an outcome the current step cannot have, never does I/O."""
    version = saga.version

    def stamp(kind: type[Any], **fields: Any) -> Any:
        nonlocal version
        version += 1
        event_id = f"{saga.chip_id}:{version}:{kind.__name__}"
        return kind(event_id=event_id, chip_id=saga.chip_id, occurred_at=now, **fields)

    match outcome:
        case act.Requested() if saga.phase == "new":
            events = [stamp(ev.ActivationRequested, registrar=outcome.registrar, ddd=outcome.ddd)]
            if outcome.phone_number and outcome.salvy_account_id:
                events.append(stamp(ev.NumberObtained, phone_number=outcome.phone_number,
                                    salvy_account_id=outcome.salvy_account_id))
            return events
        case act.Requested():
            return []  # already requested: a redelivered Provisioned
        case act.HostFreed() if saga.phase == "abandoned" and saga.host is not None:
            return [stamp(ev.HostReleased, host=saga.host)]
        case act.FailureSent() if saga.phase == "abandoned" and saga.host is None:
            return [stamp(ev.FailureReported)]
        case act.RetryAsked() if saga.phase == "closed" or (
                saga.phase == "abandoned" and saga.host is None):
            return [stamp(ev.ActivationResumed)]
        case act.RetryAsked():
            return []  # nothing abandoned: a running, completed or retired saga goes on as is
        case act.RetireSeen() if saga.phase not in ("new", "retiring", "retired"):
            return [stamp(ev.RetirementRequested, banned=outcome.banned)]
        case act.RetireSeen():
            return []  # already retiring (a redelivered Retired), or nothing was ever taken
        case act.RelinkSeen() if saga.phase == "completed":
            return [stamp(ev.RelinkBegun)]
        case act.RelinkSeen():
            return []  # already relinking (a redelivered event), or not linked: nothing to do
    if saga.phase == "retiring":
        return _retiring(saga, outcome, policy, now, stamp)
    if saga.phase == "relinking":
        return _relinking(saga, outcome, policy, now, stamp)
    if saga.phase != "running":
        return []  # a late outcome from before the saga ended
    return _running(saga, outcome, policy, now, stamp)


def _running(saga: Saga, outcome: act.Outcome, policy: act.SagaPolicy, now: datetime,
             stamp: Any) -> list[ev.AnyActivationEvent]:
    step = current_step(saga)
    match outcome:
        case act.ChipMarked() if step is Step.START:
            return [stamp(ev.ChipActivating)]
        case act.NumberBought() if step is Step.NUMBER:
            return [stamp(ev.NumberObtained, phone_number=outcome.phone_number,
                          salvy_account_id=outcome.salvy_account_id)]
        case act.HostChosen() if step is Step.HOST:
            return [stamp(ev.HostAllocated, host=outcome.host)]
        case act.InstanceReady() if step is Step.INSTANCE:
            return [stamp(ev.InstanceCreated, instance=outcome.instance)]
        case act.CodeSent() if step is Step.CODE:
            return [stamp(ev.CodeRequested, sms_after_seq=outcome.sms_after_seq)]
        case act.CodeArrived() if step is Step.CODE and saga.code_requested:
            return [stamp(ev.CodeReceived, sms_id=outcome.sms_id, sms_seq=outcome.sms_seq)]
        case act.Registered() if step is Step.REGISTER:
            return [stamp(ev.NumberRegistered, obs_after_seq=outcome.obs_after_seq)]
        case act.Opened() if step is Step.CONNECTION:
            return [stamp(ev.ConnectionOpened)]
        case act.ChipCompleted() if step is Step.COMPLETE:
            return [stamp(ev.ActivationCompleted, instance=saga.instance or "",
                          host=saga.host or "")]
        case act.StepFailed():
            return [_failure(saga, outcome, policy, now, stamp)]
    raise SagaRuleBroken(f"{type(outcome).__name__} at step {step.value}")


def _retiring(saga: Saga, outcome: act.Outcome, policy: act.SagaPolicy, now: datetime,
              stamp: Any) -> list[ev.AnyActivationEvent]:
    step = current_step(saga)
    match outcome:
        case act.Released() if outcome.step is step is Step.CANCEL_NUMBER:
            return [stamp(ev.NumberCancelled, salvy_account_id=saga.salvy_account_id or "")]
        case act.Released() if outcome.step is step is Step.DELETE_INSTANCE:
            return [stamp(ev.InstanceDeleted, instance=saga.instance or "", host=saga.host or "")]
        case act.Released() if outcome.step is step is Step.FREE_SLOT:
            return [stamp(ev.HostSlotFreed, host=saga.host or "")]
        case act.RetirementDone() if step is Step.COMPLETE:
            return [stamp(ev.RetirementCompleted)]
        case act.StepFailed() if step in RELEASE_STEPS:
            attempt = saga.attempts.get(step, 0) + 1
            if not outcome.retryable or attempt >= policy.attempts(step):
                return [stamp(ev.ReleaseSkipped, step=step,
                              reason=f"{outcome.reason} (after {attempt} attempts)")]
            return [stamp(ev.AttemptFailed, step=step, reason=outcome.reason, attempt=attempt,
                          retry_at=now + policy.backoff(attempt))]
    raise SagaRuleBroken(f"{type(outcome).__name__} while retiring, at {step.value}")


def _relinking(saga: Saga, outcome: act.Outcome, policy: act.SagaPolicy, now: datetime,
               stamp: Any) -> list[ev.AnyActivationEvent]:
    pending = saga.relink_failure is not None
    match outcome:
        case act.LinkIssued() if not saga.link_offered and not pending:
            return [stamp(ev.LinkOffered, attempt=outcome.attempt,
                          obs_after_seq=outcome.obs_after_seq)]
        case act.LinkOpened() if saga.link_offered:
            return [stamp(ev.RelinkCompleted)]
        case act.StepFailed() if not pending:
            attempt = saga.relink_attempt if saga.link_offered else saga.relink_attempt + 1
            give_up = not outcome.retryable or attempt >= policy.attempts(Step.RELINK)
            return [stamp(ev.LinkTryFailed, attempt=attempt, reason=outcome.reason,
                          give_up=give_up)]
        case act.LinkFailureSent() if pending:
            retry_at = None if saga.relink_give_up else now + policy.backoff(saga.relink_attempt)
            return [stamp(ev.LinkFailureReported, give_up=saga.relink_give_up, retry_at=retry_at)]
    raise SagaRuleBroken(f"{type(outcome).__name__} while relinking")


def _failure(saga: Saga, failed: act.StepFailed, policy: act.SagaPolicy, now: datetime,
             stamp: Any) -> ev.AnyActivationEvent:
    attempt = saga.attempts.get(failed.step, 0) + 1
    if not failed.retryable or attempt >= policy.attempts(failed.step):
        reason = failed.reason if not failed.retryable else (
            f"{failed.reason} (gave up after {attempt} attempts)")
        return stamp(ev.ActivationAbandoned, step=failed.step, reason=reason,  # type: ignore[no-any-return]
                     retryable=failed.retryable)
    return stamp(ev.AttemptFailed, step=failed.step, reason=failed.reason,  # type: ignore[no-any-return]
                 attempt=attempt, retry_at=now + policy.backoff(attempt),
                 drop_host=failed.drop_host, drop_code=failed.drop_code)


def evolve(saga: Saga, event: ev.AnyActivationEvent) -> Saga:
    """The saga after `event`; pure, so replay gives the state the runner had."""
    r = msgspec.structs.replace
    saga = r(saga, version=saga.version + 1)
    match event:
        case ev.ActivationRequested():
            return r(saga, phase="running", registrar=event.registrar, ddd=event.ddd)
        case ev.ChipActivating():
            return r(saga, chip_activating=True)
        case ev.NumberObtained():
            return r(saga, phone_number=event.phone_number,
                     salvy_account_id=event.salvy_account_id)
        case ev.HostAllocated():
            return r(saga, host=event.host, retry_at=None)
        case ev.InstanceCreated():
            return r(saga, instance=event.instance, retry_at=None)
        case ev.CodeRequested():
            return r(saga, code_requested=True, sms_after_seq=event.sms_after_seq,
                     step_started_at=event.occurred_at, retry_at=None)
        case ev.CodeReceived():
            return r(saga, code=event.code, sms_id=event.sms_id, sms_seq=event.sms_seq,
                     step_started_at=None)
        case ev.NumberRegistered():
            return r(saga, registered=True, obs_after_seq=event.obs_after_seq,
                     step_started_at=event.occurred_at, retry_at=None)
        case ev.ConnectionOpened():
            return r(saga, connected=True, step_started_at=None)
        case ev.AttemptFailed():
            return _after_failed_attempt(saga, event)
        case ev.ActivationCompleted():
            return r(saga, phase="completed")
        case ev.ActivationAbandoned():
            return r(saga, phase="abandoned", failed_step=event.step,
                     failure_reason=event.reason, failure_retryable=event.retryable)
        case ev.HostReleased():
            return r(saga, host=None, instance=None)
        case ev.FailureReported():
            return r(saga, phase="closed")
        case ev.ActivationResumed():
            return _resumed(saga)
        case ev.RetirementRequested():
            return r(saga, phase="retiring", retired_banned=event.banned, retry_at=None,
                     step_started_at=None)
        case ev.ReleaseSkipped():
            return r(saga, released=(*saga.released, event.step), retry_at=None)
        case ev.NumberCancelled() | ev.InstanceDeleted() | ev.HostSlotFreed():
            return r(saga, released=(*saga.released, _RELEASED_BY[type(event)]), retry_at=None)
        case ev.RetirementCompleted():
            return r(saga, phase="retired")
        case ev.RelinkBegun():
            return r(saga, phase="relinking", retry_at=None, **_NO_RELINK)
        case ev.LinkOffered():
            return r(saga, relink_attempt=event.attempt, link_offered=True,
                     link_after_seq=event.obs_after_seq, step_started_at=event.occurred_at)
        case ev.LinkTryFailed():
            return r(saga, relink_attempt=event.attempt, link_offered=False,
                     relink_failure=event.reason, relink_give_up=event.give_up)
        case ev.LinkFailureReported() if event.give_up:
            return r(saga, phase="completed", **_NO_RELINK)
        case ev.LinkFailureReported():
            return r(saga, relink_failure=None, retry_at=event.retry_at)
        case ev.RelinkCompleted():
            return r(saga, phase="completed", **_NO_RELINK)
    return saga


_NO_RELINK: dict[str, Any] = {
    "relink_attempt": 0, "link_offered": False, "link_after_seq": 0, "relink_failure": None,
    "relink_give_up": False, "step_started_at": None}


_RELEASED_BY: dict[type[ev.ActivationEvent], Step] = {
    ev.NumberCancelled: Step.CANCEL_NUMBER, ev.InstanceDeleted: Step.DELETE_INSTANCE,
    ev.HostSlotFreed: Step.FREE_SLOT}


# A code to get again: its SMS, and whether one was requested.
_NO_CODE: dict[str, Any] = {"code": None, "sms_id": None, "sms_seq": 0, "code_requested": False}


def _resumed(saga: Saga) -> Saga:
    """Running again from the first step not done, the number kept. The wind-down released
    the host, so the code and the link bound to it are redone on the next one."""
    fresh = msgspec.structs.replace(
        saga, phase="running", attempts={}, retry_at=None, step_started_at=None,
        failed_step=None, failure_reason=None, failure_retryable=True)
    if saga.host is None:
        fresh = msgspec.structs.replace(fresh, **_NO_CODE,
                                        registered=False, connected=False)
    return fresh


def _after_failed_attempt(saga: Saga, event: ev.AttemptFailed) -> Saga:
    attempts = {**saga.attempts, event.step: event.attempt}
    saga = msgspec.structs.replace(saga, attempts=attempts, retry_at=event.retry_at)
    if event.drop_host and saga.host is not None:
        saga = msgspec.structs.replace(saga, host=None, instance=None,
                                       lost_hosts=(*saga.lost_hosts, saga.host))
        if saga.registrar == "vps":  # the code and the link were bound to that host
            saga = msgspec.structs.replace(saga, **_NO_CODE,
                                           registered=False)
    if event.drop_code:
        saga = msgspec.structs.replace(saga, **_NO_CODE,
                                       step_started_at=None)
    if event.step is Step.CONNECTION:  # wait again from the retry, not from the first start
        saga = msgspec.structs.replace(saga, step_started_at=event.retry_at)
    return saga


def fold(chip_id: str, events: list[ev.AnyActivationEvent]) -> Saga:
    saga = Saga(chip_id=chip_id)
    for event in events:
        saga = evolve(saga, event)
    return saga
