"""Activator saga events, on `activation.evt.<chip_id>` (stream ACTIVATIONS).

One event per completed step, so a restarted activator folds them and resumes at the first
step not done, never repeating one that is. Tags are pinned; fields may be added with
defaults, never renamed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

import msgspec

RegistrarKind = Literal["cloud_api", "vps"]
_INSTANCE_PREFIX = "chip-"


def instance_name(chip_id: str) -> str:
    """A chip's gateway instance: derived, so a retried create collides with our own earlier
    attempt instead of making a second instance, and a reader of gateway signals can tell
    the instance of a chip still activating (whose `Activated` has not named it yet)."""
    return f"{_INSTANCE_PREFIX}{chip_id}"


def chip_of_instance(instance: str) -> str | None:
    """The chip id `instance_name` made `instance` from; None for another name."""
    return instance.removeprefix(_INSTANCE_PREFIX) if instance.startswith(_INSTANCE_PREFIX) \
        else None


class Step(StrEnum):
    """The saga's steps in order; `ActivationFailed.step` on the chip names one of them."""

    START = "start"  # the chip told it is activating
    NUMBER = "number"
    HOST = "host"
    INSTANCE = "instance"
    CODE = "code"  # code requested and the SMS with it received
    REGISTER = "register"  # code verified, number registered and linked
    CONNECTION = "connection"  # the gateway reports the connection open
    COMPLETE = "complete"  # the chip told it is activated
    # After the chip is retired: what the activation took from the outside world, given back.
    CANCEL_NUMBER = "cancel_number"  # the Salvy number cancelled
    DELETE_INSTANCE = "delete_instance"  # the Evolution instance deleted
    FREE_SLOT = "free_slot"  # the host's gateway slot freed
    # After the gateway logged the chip out (401): a new pairing code or QR, until linked.
    RELINK = "relink"


class ActivationEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: str  # `<chip_id>:<saga version>:<type>`, also the Nats-Msg-Id
    chip_id: str
    occurred_at: datetime


class ActivationRequested(ActivationEvent, frozen=True, kw_only=True, tag="ActivationRequested"):
    registrar: RegistrarKind = "cloud_api"
    ddd: int | None = None


class ChipActivating(ActivationEvent, frozen=True, kw_only=True, tag="ChipActivating"):
    pass


class NumberObtained(ActivationEvent, frozen=True, kw_only=True, tag="NumberObtained"):
    phone_number: str  # personal data: never logged unmasked
    salvy_account_id: str


class HostAllocated(ActivationEvent, frozen=True, kw_only=True, tag="HostAllocated"):
    host: str


class InstanceCreated(ActivationEvent, frozen=True, kw_only=True, tag="InstanceCreated"):
    instance: str


class CodeRequested(ActivationEvent, frozen=True, kw_only=True, tag="CodeRequested"):
    sms_after_seq: int  # GATEWAY_OBS sequence before the request: older SMS are stale codes


class CodeReceived(ActivationEvent, frozen=True, kw_only=True, tag="CodeReceived"):
    """The SMS with the code came. The code itself is not kept (it opens the number's
    WhatsApp account): register reads it again from the SMS at `sms_seq` in GATEWAY_OBS,
    which keeps it a week. `code` is only in events stored before that."""

    sms_id: str
    sms_seq: int = 0  # the SMS's GATEWAY_OBS sequence (0 in older events, which hold `code`)
    code: str | None = None


class NumberRegistered(ActivationEvent, frozen=True, kw_only=True, tag="NumberRegistered"):
    obs_after_seq: int  # GATEWAY_OBS sequence from which to watch for the connection


class ConnectionOpened(ActivationEvent, frozen=True, kw_only=True, tag="ConnectionOpened"):
    pass


class AttemptFailed(ActivationEvent, frozen=True, kw_only=True, tag="AttemptFailed"):
    step: Step
    reason: str
    attempt: int  # 1-based count of failures of this step
    retry_at: datetime
    drop_host: bool = False  # the host is lost: pick another one
    drop_code: bool = False  # the code is stale or wrong: request a new one


class ActivationCompleted(ActivationEvent, frozen=True, kw_only=True,
                          tag="ActivationCompleted"):
    instance: str
    host: str


class ActivationAbandoned(ActivationEvent, frozen=True, kw_only=True,
                          tag="ActivationAbandoned"):
    step: Step
    reason: str
    retryable: bool  # False when retrying cannot help (e.g. WhatsApp's 72 h register lock)


class HostReleased(ActivationEvent, frozen=True, kw_only=True, tag="HostReleased"):
    host: str


class FailureReported(ActivationEvent, frozen=True, kw_only=True, tag="FailureReported"):
    pass


class ActivationResumed(ActivationEvent, frozen=True, kw_only=True, tag="ActivationResumed"):
    """An operator's retry of an abandoned saga: it runs again, keeping its number."""


class RetirementRequested(ActivationEvent, frozen=True, kw_only=True,
                          tag="RetirementRequested"):
    """The chip was retired: give back its number, instance and host slot, in that order."""

    banned: bool  # retired as banned: Salvy is told the number was blocked by WhatsApp


class NumberCancelled(ActivationEvent, frozen=True, kw_only=True, tag="NumberCancelled"):
    salvy_account_id: str


class InstanceDeleted(ActivationEvent, frozen=True, kw_only=True, tag="InstanceDeleted"):
    instance: str
    host: str


class HostSlotFreed(ActivationEvent, frozen=True, kw_only=True, tag="HostSlotFreed"):
    host: str


class ReleaseSkipped(ActivationEvent, frozen=True, kw_only=True, tag="ReleaseSkipped"):
    """A release step failed its every attempt: left for an operator, the next one goes on."""

    step: Step
    reason: str


class RetirementCompleted(ActivationEvent, frozen=True, kw_only=True,
                          tag="RetirementCompleted"):
    pass


class RelinkBegun(ActivationEvent, frozen=True, kw_only=True, tag="RelinkBegun"):
    """The chip was logged out (its `RelinkRequested`): offer links until it is linked."""


class LinkOffered(ActivationEvent, frozen=True, kw_only=True, tag="LinkOffered"):
    """Try `attempt`: the gateway gave a pairing code or QR, and the chip was told it. The
    code itself is not kept here: it is a short-lived credential (the chip's
    `RelinkStarted` carries it to the operator)."""

    attempt: int
    obs_after_seq: int  # GATEWAY_OBS sequence before the connect: the `open` comes after it


class LinkTryFailed(ActivationEvent, frozen=True, kw_only=True, tag="LinkTryFailed"):
    attempt: int
    reason: str
    give_up: bool  # the last try (JULIA_RELINK_MAX_TRIES), or one retrying cannot help


class LinkFailureReported(ActivationEvent, frozen=True, kw_only=True,
                          tag="LinkFailureReported"):
    """The chip was told the try failed (`FailRelink`); it cools itself after the last."""

    give_up: bool
    retry_at: datetime | None = None  # when the next try starts; None after the last


class RelinkCompleted(ActivationEvent, frozen=True, kw_only=True, tag="RelinkCompleted"):
    """The instance reported `open` and the chip went back to where it was."""


AnyActivationEvent = (
    ActivationRequested | ChipActivating | NumberObtained | HostAllocated | InstanceCreated
    | CodeRequested | CodeReceived | NumberRegistered | ConnectionOpened | AttemptFailed
    | ActivationCompleted | ActivationAbandoned | HostReleased | FailureReported
    | ActivationResumed | RetirementRequested | NumberCancelled | InstanceDeleted
    | HostSlotFreed | ReleaseSkipped | RetirementCompleted | RelinkBegun | LinkOffered
    | LinkTryFailed | LinkFailureReported | RelinkCompleted
)

_DECODER: msgspec.json.Decoder[AnyActivationEvent] = msgspec.json.Decoder(AnyActivationEvent)


def decode_activation_event(data: bytes) -> AnyActivationEvent:
    return _DECODER.decode(data)
