"""Carry out one saga action against the outside world and report its outcome.

Every call here is safe to repeat after a crash, which is what lets the saga resume at a
step that may have half-happened: Salvy's purchase carries the chip id as idempotency key,
the instance name is derived from the chip id (a taken name is our own earlier attempt),
the registrars check what is already registered, and chip commands carry fixed ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from nats.js.client import JetStreamContext

from julia_chips.activation import observation_waits as waits
from julia_chips.activation.model import steps as act
from julia_chips.activation.model.saga import Saga, current_step
from julia_chips.activation.relink_effects import relink_effect
from julia_chips.chip.client import ChipClient
from julia_chips.clock import Clock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import RegistrarKind, Step
from julia_chips.gateways.evolution.errors import InstanceMissing, InstanceNameTaken, redact
from julia_chips.gateways.evolution.wire import InstanceSpec, WebhookTarget
from julia_chips.gateways.registrars import EvolutionFor, Registrar, RegistrationFailed
from julia_chips.gateways.salvy.client import CancelReason, SalvyClient
from julia_chips.gateways.salvy.errors import (
    PhoneAccountMissing,
    PhoneAccountStatusInvalid,
    SalvyRateLimited,
    SalvyUnavailable,
)
from julia_chips.gateways.vps.client import NoHostCapacity, VpsClient
from julia_chips.gateways.vps.hosts import HostRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivationPorts:
    """Everything the activator talks to; tests and the sandbox build it with other URLs."""

    js: JetStreamContext
    chips: ChipClient
    salvy: SalvyClient
    vps: VpsClient
    hosts: HostRegistry
    evolution_for: EvolutionFor
    registrars: Mapping[RegistrarKind, Registrar]
    webhook: WebhookTarget  # where instances post, each with its own x-julia-secret
    default_ddd: int = 11


async def perform(ports: ActivationPorts, clock: Clock, saga: Saga, action: act.Action,
                  policy: act.SagaPolicy) -> act.Outcome | None:
    """The outcome of `action`; None after a back-off wait (nothing to record)."""
    if isinstance(action, act.WaitUntil):
        await _sleep_until(clock, action.until)
        return None
    step = current_step(saga)
    try:
        if isinstance(action, act.AwaitCode | act.AwaitConnection | act.AwaitRelink):
            return await _dispatch(ports, clock, saga, action)
        async with asyncio.timeout(policy.call_timeout):
            return await _dispatch(ports, clock, saga, action)
    except RegistrationFailed as exc:
        return act.StepFailed(step=step, reason=redact(str(exc)), retryable=exc.retryable,
                              drop_code=exc.drop_code, drop_host=exc.drop_host)
    except TimeoutError:
        return act.StepFailed(step=step, reason=f"timed out after {policy.call_timeout:g}s")
    except (SalvyRateLimited, SalvyUnavailable, NoHostCapacity) as exc:
        return act.StepFailed(step=step, reason=redact(str(exc)))
    except Exception as exc:  # a failed step must become an event, never kill the saga
        log.warning("activation of %s: %s failed", saga.chip_id, step.value, exc_info=True)
        return act.StepFailed(step=step, reason=redact(f"{type(exc).__name__}: {exc}"))


def _registrar(ports: ActivationPorts, kind: RegistrarKind) -> Registrar:
    """The registrar a saga recorded. One this process was not configured for (a saga started
    with `cloud_api` before the Cloud API variables were removed) fails the step, retryably,
    saying so: the saga waits for the configuration instead of switching registrars midway."""
    try:
        return ports.registrars[kind]
    except KeyError:
        raise RegistrationFailed(f"the {kind} registrar is not configured in this process "
                                 f"(JULIA_REGISTRAR and its variables: docs/configuration.md)"
                                 ) from None


async def _sleep_until(clock: Clock, until: datetime) -> None:
    """Clock time, so an accelerated clock shortens back-offs too."""
    while (left := (until - clock.now()).total_seconds()) > 0:  # noqa: ASYNC110 (clock time)
        await asyncio.sleep(min(left, 0.05))


async def _dispatch(ports: ActivationPorts, clock: Clock, saga: Saga,
                    action: act.Action) -> act.Outcome:
    chip = saga.chip_id
    match action:
        case act.MarkActivating():
            return await _mark_activating(ports, chip)
        case act.ObtainNumber():
            account = await ports.salvy.create_mobile_did(
                action.ddd or ports.default_ddd, idempotency_key=action.idempotency_key,
                name=f"julia-chip-{chip}")
            return act.NumberBought(phone_number=account.phone_number,
                                    salvy_account_id=account.id)
        case act.AllocateHost():
            hosts = [h for h in ports.hosts if h.name not in action.exclude]
            return act.HostChosen(host=(await ports.vps.pick_host(hosts)).name)
        case act.CreateInstance():
            return await _create_instance(ports, action)
        case act.RequestCode():
            after = await waits.sms_cursor(ports.js, action.salvy_account_id)
            host = ports.hosts.get(action.host)
            await _registrar(ports, action.registrar).request_code(host, action.phone_number)
            return act.CodeSent(sms_after_seq=after)
        case act.AwaitCode():
            found = await waits.wait_for_code(ports.js, clock, action.salvy_account_id,
                                              action.after_seq, action.deadline)
            if found is None:
                return act.StepFailed(step=Step.CODE, reason="no SMS code before the deadline",
                                      drop_code=True)
            sms, seq = found
            return act.CodeArrived(sms_id=sms.sms_id, sms_seq=seq)
        case act.Register():
            code = action.code or await waits.code_at(ports.js, action.salvy_account_id,
                                                      action.sms_seq)
            if code is None:
                return act.StepFailed(step=Step.REGISTER, drop_code=True,
                                      reason="the SMS with the code is no longer stored")
            after = await waits.connection_cursor(ports.js, action.instance)
            host = ports.hosts.get(action.host)
            await _registrar(ports, action.registrar).register(
                host, action.instance, action.phone_number, code)
            return act.Registered(obs_after_seq=after)
        case act.AwaitConnection():
            return await _await_connection(ports, clock, action)
        case act.Complete():
            return await _complete(ports, chip, action)
        case act.ReleaseHost():
            return await _release(ports, chip, action, saga.version)
        case act.ReportFailure():
            return await _report_failure(ports, chip, action)
        case act.CancelNumber() | act.DeleteInstance() | act.FreeSlot():
            return await _give_back(ports, chip, action)
        case act.FinishRetirement():
            return act.RetirementDone()
        case act.OfferLink() | act.AwaitRelink() | act.ReportRelinkFailure():
            return await relink_effect(ports, clock, chip, saga.version, action)
    raise AssertionError(f"no effect for {type(action).__name__}")


async def _mark_activating(ports: ActivationPorts, chip: str) -> act.Outcome:
    reply = await ports.chips.send(chip, cmd.StartActivation(command_id="activator:start"))
    if reply.ok or reply.state == "activating":
        return act.ChipMarked()
    return _chip_refused(Step.START, reply.error)


async def _create_instance(ports: ActivationPorts, action: act.CreateInstance) -> act.Outcome:
    host = ports.hosts.get(action.host)
    health = await ports.vps.health(host)
    if health.free_slots <= 0:
        return act.StepFailed(step=Step.INSTANCE, reason=f"host {host.name} lost: "
                              f"{health.error or 'no free slot'}", drop_host=True)
    binding = await _registrar(ports, action.registrar).binding(action.phone_number)
    spec = InstanceSpec(name=action.name, webhook=ports.webhook,
                        integration=binding.integration, number=binding.number,
                        token=binding.token)
    # A taken name is our own earlier attempt, cut short before it was recorded.
    with contextlib.suppress(InstanceNameTaken):
        await ports.evolution_for(host).create_instance(spec)
    return act.InstanceReady(instance=action.name)


async def _await_connection(ports: ActivationPorts, clock: Clock,
                            action: act.AwaitConnection) -> act.Outcome:
    probe = waits.open_probe(ports.evolution_for(ports.hosts.get(action.host)), action.instance)
    if await waits.wait_for_open(ports.js, clock, action.instance, action.after_seq,
                                 action.deadline, probe):
        return act.Opened()
    return act.StepFailed(step=Step.CONNECTION, reason="connection not open before the deadline")


async def _complete(ports: ActivationPorts, chip: str, action: act.Complete) -> act.Outcome:
    command = cmd.CompleteActivation(command_id="activator:complete", instance=action.instance,
                                     host=action.host, phone_number=action.phone_number,
                                     salvy_account_id=action.salvy_account_id)
    reply = await ports.chips.send(chip, command)
    if reply.ok:
        return act.ChipCompleted()
    return _chip_refused(Step.COMPLETE, reply.error)


def _chip_refused(step: Step, error: str | None) -> act.Outcome:
    """The chip actor said no: retrying the same command would be refused again."""
    return act.StepFailed(step=step, reason=f"chip refused: {error}", retryable=False)


async def _release(ports: ActivationPorts, chip: str, action: act.ReleaseHost,
                   version: int) -> act.Outcome:
    """Give back what the abandoned activation took on its host, the number kept so a retry
    goes on with it: the instance, then the host's gateway slot, each a `ResourceReleased` in
    the chip's history. Best effort: what cannot be released now is logged, not retried (a
    retry of the activation takes another host)."""
    try:
        host = ports.hosts.get(action.host)
    except KeyError:
        return act.HostFreed()  # the host left the registry: nothing of it to give back
    if action.instance is not None:
        try:
            await ports.evolution_for(host).delete(action.instance)
            detail: str | None = f"instance {action.instance} deleted"
        except InstanceMissing:
            detail = f"instance {action.instance} already gone"
        except Exception as exc:
            log.warning("could not delete instance %s: %s", action.instance, redact(str(exc)))
            detail = None
        await _record_release(ports, chip, f"wind-down:{version}", Step.DELETE_INSTANCE, detail)
    if action.phone_number is not None:
        try:
            answer = await ports.vps.release(host, action.phone_number)
            detail = (f"gateway slot on {host.name} freed" if answer.released
                      else f"no gateway slot held on {host.name}")
        except Exception as exc:
            log.warning("could not free the slot on %s: %s", host.name, redact(str(exc)))
            detail = None
        await _record_release(ports, chip, f"wind-down:{version}", Step.FREE_SLOT, detail)
    return act.HostFreed()


async def _record_release(ports: ActivationPorts, chip: str, key: str, step: Step,
                          detail: str | None) -> None:
    """A line in the chip's history for a release that happened (`detail` None: it did not)."""
    if detail is None:
        return
    reply = await ports.chips.send(chip, cmd.RecordRelease(
        command_id=f"activator:{key}:{step.value}", resource=step.value, detail=detail))
    if not reply.ok:
        log.warning("chip %s refused RecordRelease: %s", chip, reply.error)


async def _report_failure(ports: ActivationPorts, chip: str,
                          action: act.ReportFailure) -> act.Outcome:
    command = cmd.FailActivation(command_id="activator:fail", reason=action.reason[:1000],
                                 retryable=action.retryable, step=action.step.value)
    reply = await ports.chips.send(chip, command)
    if not reply.ok:
        log.warning("chip %s refused FailActivation: %s", chip, reply.error)
    return act.FailureSent()


async def _give_back(ports: ActivationPorts, chip: str,
                     action: act.CancelNumber | act.DeleteInstance | act.FreeSlot) -> act.Outcome:
    """One retirement step, then a line in the chip's history. Each is safe to repeat: a
    number already cancelled, an instance already gone or a slot already free is done."""
    match action:
        case act.CancelNumber():
            reason = cancel_reason(banned=action.banned)
            step, detail = Step.CANCEL_NUMBER, (f"salvy account {action.salvy_account_id} "
                                                f"cancelled ({reason})")
            with contextlib.suppress(PhoneAccountStatusInvalid, PhoneAccountMissing):
                await ports.salvy.cancel(action.salvy_account_id, reason,
                                         detail="julia chip retired")
        case act.DeleteInstance():
            step, detail = Step.DELETE_INSTANCE, f"instance {action.instance} deleted"
            with contextlib.suppress(InstanceMissing):
                await ports.evolution_for(ports.hosts.get(action.host)).delete(action.instance)
        case act.FreeSlot():
            step, detail = Step.FREE_SLOT, f"gateway slot on {action.host} freed"
            if action.phone_number is not None:
                await ports.vps.release(ports.hosts.get(action.host), action.phone_number)
    command = cmd.RecordRelease(command_id=f"activator:{step.value}", resource=step.value,
                                detail=detail)
    reply = await ports.chips.send(chip, command)
    if not reply.ok:
        return act.StepFailed(step=step, reason=f"chip refused: {reply.error}")
    return act.Released(step=step)


def cancel_reason(*, banned: bool) -> CancelReason:
    """Salvy's reason for a retired chip's number: the v3 API names a WhatsApp ban
    `whatsapp-blocked` (v2 called it `whatsapp-ban`); any other retirement is `unnecessary`."""
    return "whatsapp-blocked" if banned else "unnecessary"
