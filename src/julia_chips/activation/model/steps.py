"""The activator saga's vocabulary with its runner: what to do next, and what came of it.

`Action`s are what the pure saga asks the runner to do; `Outcome`s are what the runner
reports back. Both are plain frozen structs, so the saga stays free of I/O and clients.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from julia_chips.contract.activation import RegistrarKind, Step

# Actions ------------------------------------------------------------------------------------


class Action(msgspec.Struct, frozen=True, kw_only=True):
    pass


class MarkActivating(Action, frozen=True, kw_only=True):
    """Send StartActivation to the chip, so a later FailActivation is accepted."""


class ObtainNumber(Action, frozen=True, kw_only=True):
    ddd: int | None
    idempotency_key: str  # the chip id: a retried purchase returns the same number


class AllocateHost(Action, frozen=True, kw_only=True):
    exclude: tuple[str, ...]  # hosts lost earlier in this activation


class CreateInstance(Action, frozen=True, kw_only=True):
    name: str
    host: str
    phone_number: str
    registrar: RegistrarKind


class RequestCode(Action, frozen=True, kw_only=True):
    phone_number: str
    salvy_account_id: str
    host: str
    registrar: RegistrarKind


class AwaitCode(Action, frozen=True, kw_only=True):
    salvy_account_id: str
    after_seq: int
    deadline: datetime


class Register(Action, frozen=True, kw_only=True):
    """Register the number with the code of the SMS at `sms_seq` (read again there: the
    saga does not keep codes), or with `code` from an older saga that stored it."""

    phone_number: str
    salvy_account_id: str
    sms_seq: int
    code: str | None = None
    host: str
    instance: str
    registrar: RegistrarKind


class AwaitConnection(Action, frozen=True, kw_only=True):
    instance: str
    host: str
    after_seq: int
    deadline: datetime


class Complete(Action, frozen=True, kw_only=True):
    instance: str
    host: str
    phone_number: str  # told to the chip with the instance: its Provision may lack them
    salvy_account_id: str


class ReleaseHost(Action, frozen=True, kw_only=True):
    """An abandoned activation gives back what it took on the host; the number is kept."""

    host: str
    instance: str | None  # the gateway instance to delete
    phone_number: str | None  # whose gateway slot on the host to free


class ReportFailure(Action, frozen=True, kw_only=True):
    step: Step
    reason: str
    retryable: bool


class CancelNumber(Action, frozen=True, kw_only=True):
    """Retirement: cancel the Salvy number, so it stops being billed."""

    salvy_account_id: str
    banned: bool  # the chip was banned: the cancel says so


class DeleteInstance(Action, frozen=True, kw_only=True):
    """Retirement: delete the chip's Evolution instance."""

    host: str
    instance: str


class FreeSlot(Action, frozen=True, kw_only=True):
    """Retirement: give the number's gateway slot on its host back."""

    host: str
    phone_number: str | None


class FinishRetirement(Action, frozen=True, kw_only=True):
    pass


class OfferLink(Action, frozen=True, kw_only=True):
    """Relink try `attempt`: ask the gateway for a pairing code (by number, Baileys) or a QR,
    and tell the chip (`StartRelink`)."""

    instance: str
    host: str
    phone_number: str | None  # None: a QR only (not a Baileys instance)
    attempt: int


class AwaitRelink(Action, frozen=True, kw_only=True):
    """Wait for the instance to report `open`, then tell the chip (`CompleteRelink`)."""

    instance: str
    host: str
    after_seq: int
    deadline: datetime


class ReportRelinkFailure(Action, frozen=True, kw_only=True):
    attempt: int
    reason: str
    give_up: bool


class WaitUntil(Action, frozen=True, kw_only=True):
    """Back off before retrying the step."""

    until: datetime


class Finished(Action, frozen=True, kw_only=True):
    pass


# Outcomes -----------------------------------------------------------------------------------


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Requested(Outcome, frozen=True, kw_only=True):
    registrar: RegistrarKind = "cloud_api"
    ddd: int | None = None
    phone_number: str | None = None  # given by Provision: no purchase
    salvy_account_id: str | None = None


class ChipMarked(Outcome, frozen=True, kw_only=True):
    pass


class NumberBought(Outcome, frozen=True, kw_only=True):
    phone_number: str
    salvy_account_id: str


class HostChosen(Outcome, frozen=True, kw_only=True):
    host: str


class InstanceReady(Outcome, frozen=True, kw_only=True):
    instance: str


class CodeSent(Outcome, frozen=True, kw_only=True):
    sms_after_seq: int


class CodeArrived(Outcome, frozen=True, kw_only=True):
    sms_id: str
    sms_seq: int  # where the SMS is in GATEWAY_OBS: register reads the code there


class Registered(Outcome, frozen=True, kw_only=True):
    obs_after_seq: int


class Opened(Outcome, frozen=True, kw_only=True):
    pass


class ChipCompleted(Outcome, frozen=True, kw_only=True):
    pass


class HostFreed(Outcome, frozen=True, kw_only=True):
    pass


class FailureSent(Outcome, frozen=True, kw_only=True):
    pass


class RetryAsked(Outcome, frozen=True, kw_only=True):
    """The chip's `ActivationRetried`: an operator wants an abandoned saga to run again."""


class RetireSeen(Outcome, frozen=True, kw_only=True):
    """The chip was retired (its `Retired` event): what it holds must be released."""

    banned: bool


class Released(Outcome, frozen=True, kw_only=True):
    """A retirement step is done (or had nothing left to do: already released)."""

    step: Step


class RetirementDone(Outcome, frozen=True, kw_only=True):
    pass


class RelinkSeen(Outcome, frozen=True, kw_only=True):
    """The chip was logged out (its `RelinkRequested` event): link it again."""


class LinkIssued(Outcome, frozen=True, kw_only=True):
    attempt: int
    obs_after_seq: int


class LinkOpened(Outcome, frozen=True, kw_only=True):
    """The relinked instance is open and the chip was told."""


class LinkFailureSent(Outcome, frozen=True, kw_only=True):
    pass


class StepFailed(Outcome, frozen=True, kw_only=True):
    """A step did not succeed. `retryable=False` abandons at once (no loop on hard limits)."""

    step: Step
    reason: str
    retryable: bool = True
    drop_host: bool = False
    drop_code: bool = False


# Policy -------------------------------------------------------------------------------------


DEFAULT_RELINK_WAIT = 180.0  # seconds a pairing code or QR is waited for (JULIA_RELINK_WAIT)


def _default_timeouts() -> dict[Step, float]:
    return {Step.CODE: 300.0, Step.CONNECTION: 300.0, Step.RELINK: DEFAULT_RELINK_WAIT}


class SagaPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Bounds per step. Timeouts are seconds of clock time for the steps that wait on the
    outside world; calls get `call_timeout` seconds each."""

    max_attempts: int = 3
    # overrides of max_attempts; Step.RELINK: the tries of a relink (JULIA_RELINK_MAX_TRIES)
    attempts_by_step: dict[Step, int] = {}
    wait_timeouts: dict[Step, float] = msgspec.field(default_factory=_default_timeouts)
    call_timeout: float = 60.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def attempts(self, step: Step) -> int:
        return self.attempts_by_step.get(step, self.max_attempts)

    def scaled(self, speed: float) -> SagaPolicy:
        """The same real-time bounds on a clock `speed` times faster than the wall (the
        demo's): an SMS or a pairing takes real seconds, however fast the days go. The call
        timeout is real time already."""
        return msgspec.structs.replace(
            self, wait_timeouts={step: t * speed for step, t in self.wait_timeouts.items()},
            backoff_base=self.backoff_base * speed, backoff_max=self.backoff_max * speed)

    def backoff(self, attempt: int) -> timedelta:
        """Delay before retry `attempt` (1-based): doubling, capped."""
        return timedelta(seconds=min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))

    def wait_timeout(self, step: Step) -> timedelta:
        return timedelta(seconds=self.wait_timeouts.get(step, 300.0))
