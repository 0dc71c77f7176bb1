"""Chip commands, published to `chip.cmd.<chip_id>` (DESIGN.md, "Wire catalog").

Inbound JSON is decoded strictly: unknown fields are refused (they are typos on a
command), and every field carries the bounds that keep nonsense out of the audit log.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from julia_chips.contract.timestamps import AwareDatetime

# No whitespace, and no control character: spelt out, since Python's `\s` and the JSON
# Schema (ECMA) `\s` of /openapi.json differ on \x1c-\x1f, \x85 and \ufeff (fuzzing found it).
_NO_BLANK = r"\s\x00-\x20\x7f-\x9f\ufeff"
CommandId = Annotated[str, msgspec.Meta(min_length=1, max_length=200,
                                        pattern=rf"^[^{_NO_BLANK}]+$")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=255,
                                      pattern=rf"^[^{_NO_BLANK}*>]+$")]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+?[1-9]\d{9,14}$")]
AreaCode = Annotated[int, msgspec.Meta(ge=11, le=99)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# A day's counter above this is a broken gateway, not traffic: no chip sends that much.
Counter = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
DayNumber = Annotated[int, msgspec.Meta(ge=1, le=366)]


class ChipCommand(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    command_id: CommandId
    reply_to: Subject | None = None


class Provision(ChipCommand, frozen=True, kw_only=True, tag="Provision"):
    phone_number: Phone | None = None
    ddd: AreaCode | None = None
    salvy_account_id: Name | None = None


class StartActivation(ChipCommand, frozen=True, kw_only=True, tag="StartActivation"):
    host: Name | None = None


class CompleteActivation(ChipCommand, frozen=True, kw_only=True, tag="CompleteActivation"):
    instance: Name
    host: Name
    phone_number: Phone | None = None  # the number linked: Provision may not have named it
    salvy_account_id: Name | None = None


class FailActivation(ChipCommand, frozen=True, kw_only=True, tag="FailActivation"):
    reason: Reason
    retryable: bool
    step: Name | None = None


class RetryActivation(ChipCommand, frozen=True, kw_only=True, tag="RetryActivation"):
    """An operator asks the activator to resume an abandoned activation with the same number."""


class ObserveTraffic(ChipCommand, frozen=True, kw_only=True, tag="ObserveTraffic"):
    sent: Counter = 0
    delivered: Counter = 0
    read: Counter = 0
    replied: Counter = 0
    failed: Counter = 0
    received: Counter = 0
    health_score: Score | None = None  # the monitor's score of the last hour, as it sent these


class CloseWarmDay(ChipCommand, frozen=True, kw_only=True, tag="CloseWarmDay"):
    day_number: DayNumber


class PutInService(ChipCommand, frozen=True, kw_only=True, tag="PutInService"):
    pass


class TakeOutOfService(ChipCommand, frozen=True, kw_only=True, tag="TakeOutOfService"):
    reason: Reason


class Cool(ChipCommand, frozen=True, kw_only=True, tag="Cool"):
    reason: Reason
    until: AwareDatetime | None = None  # None: the escalating default rest


class Resume(ChipCommand, frozen=True, kw_only=True, tag="Resume"):
    pass


class ReportBan(ChipCommand, frozen=True, kw_only=True, tag="ReportBan"):
    reason: Reason
    evidence: Reason


class Reinstate(ChipCommand, frozen=True, kw_only=True, tag="Reinstate"):
    pass


class Retire(ChipCommand, frozen=True, kw_only=True, tag="Retire"):
    reason: Reason


class RecordRelease(ChipCommand, frozen=True, kw_only=True, tag="RecordRelease"):
    """The activator gave back something the chip held (retired, or its activation
    abandoned); goes in its history."""

    resource: Name
    detail: Reason


PairingCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
QrText = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Attempt = Annotated[int, msgspec.Meta(ge=1, le=100)]


class Relink(ChipCommand, frozen=True, kw_only=True, tag="Relink"):
    """The health monitor saw the gateway log the chip out (401): link it again."""

    reason: Reason
    evidence: Reason


class StartRelink(ChipCommand, frozen=True, kw_only=True, tag="StartRelink"):
    """The activator got a new pairing code or QR from the gateway for try `attempt`."""

    attempt: Attempt
    pairing_code: PairingCode | None = None
    qr: QrText | None = None


class CompleteRelink(ChipCommand, frozen=True, kw_only=True, tag="CompleteRelink"):
    """The instance reported `open` again: the chip goes back to where it was."""


class FailRelink(ChipCommand, frozen=True, kw_only=True, tag="FailRelink"):
    """Try `attempt` ended unlinked; `give_up` when it was the last one (the chip cools)."""

    attempt: Attempt
    reason: Reason
    give_up: bool = False


AnyChipCommand = (
    Provision | StartActivation | CompleteActivation | FailActivation | RetryActivation
    | ObserveTraffic
    | CloseWarmDay | PutInService | TakeOutOfService | Cool | Resume | ReportBan | Reinstate
    | Retire | RecordRelease | Relink | StartRelink | CompleteRelink | FailRelink
)

CHIP_COMMAND_TYPES: tuple[type[ChipCommand], ...] = (
    Provision, StartActivation, CompleteActivation, FailActivation, RetryActivation,
    ObserveTraffic,
    CloseWarmDay, PutInService, TakeOutOfService, Cool, Resume, ReportBan, Reinstate, Retire,
    RecordRelease, Relink, StartRelink, CompleteRelink, FailRelink,
)


class EventRef(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    seq: int


class CommandReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer on `reply_to`: ok with the appended events, or why not."""

    ok: bool
    state: str | None = None
    events: list[EventRef] = []
    error: str | None = None
    allowed: list[str] | None = None
