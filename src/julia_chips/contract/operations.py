"""Operator requests on `ops.cmd.<area>.<verb>` and their replies: the ways out of dead ends.

Requests are core NATS requests (nothing captures `ops.cmd.>` in a stream: an operator
waits for the answer, and a lost request is simply asked again). They are decoded
strictly, like chip commands: an unknown field is a typo, and the error names the field.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from julia_chips.contract.chip_commands import CommandId, Phone, Reason
from julia_chips.contract.messages import Verdict
from julia_chips.contract.route import DoctorId

Seq = Annotated[int, msgspec.Meta(ge=1)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]
# One or two subject tokens (`webhook` letters are keyed `<source>.<key>`); no wildcards.
ChipId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]  # one subject token
LetterKey = Annotated[str, msgspec.Meta(
    pattern=r"^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128})?$")]


class DeadLetterKind(StrEnum):
    """The `<kind>` of `dlq.<kind>.<key>`: who gave up on the message."""

    CHIP = "chip"
    ROUTE = "route"
    WEBHOOK = "webhook"
    OBS = "obs"
    PROJECTION = "projection"


class OpsRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every operator request: strict, so `limt` is refused rather than ignored."""


class DeadLetterFilter(OpsRequest, frozen=True, kw_only=True):
    """Which letters: all of them, one kind, or one kind and key."""

    kind: DeadLetterKind | None = None
    key: LetterKey | None = None


class ListDeadLetters(DeadLetterFilter, frozen=True, kw_only=True):
    after_seq: int = 0  # the DEAD_LETTER sequence to page on from (`next_after` of a reply)
    limit: Limit = 100


class ShowDeadLetter(OpsRequest, frozen=True, kw_only=True):
    seq: Seq


class ReplayDeadLetters(DeadLetterFilter, frozen=True, kw_only=True):
    """One letter (`seq`), or every letter the filter matches (`all: true`)."""

    seq: Seq | None = None
    all: bool = False


class PurgeDeadLetters(DeadLetterFilter, frozen=True, kw_only=True):
    """Explicit: a `kind` (and `key`), or `all: true` for the whole stream."""

    all: bool = False


class ListUnknownSends(OpsRequest, frozen=True, kw_only=True):
    chip_id: ChipId | None = None
    limit: Limit = 100


class SettleUnknownSend(OpsRequest, frozen=True, kw_only=True):
    chip_id: ChipId
    attempt_id: CommandId
    verdict: Verdict
    note: Reason | None = None


class EraseDoctor(OpsRequest, frozen=True, kw_only=True):
    """Erase a doctor's personal data: by `doctor_id`, or by `phone` (every doctor a send to
    it was assigned to, and the phone's own stranger id). Exactly one of the two."""

    doctor_id: DoctorId | None = None
    phone: Phone | None = None

    def __post_init__(self) -> None:
        if (self.doctor_id is None) == (self.phone is None):
            raise ValueError("name the doctor: exactly one of doctor_id or phone")


class OpsReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Every answer has `ok`; a refusal has `error`, naming the field when it was bad input."""

    ok: bool = True
    error: str | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    seq: int  # in DEAD_LETTER: what show, replay and paging take
    subject: str  # `dlq.<kind>.<key>`
    original_subject: str  # where it was consumed from, and where a replay sends it
    reason: str
    stored_at: datetime
    size: int  # bytes of the original body
    body: str | None = None  # only in `show`: it may hold a phone or a text


class DeadLettersListed(OpsReply, frozen=True, kw_only=True):
    letters: list[DeadLetter] = []
    next_after: int | None = None  # more letters follow: ask again with this `after_seq`


class DeadLetterShown(OpsReply, frozen=True, kw_only=True):
    letter: DeadLetter | None = None


class LetterRefused(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    reason: str


class DeadLettersReplayed(OpsReply, frozen=True, kw_only=True):
    replayed: int = 0  # letters sent back (and removed from DEAD_LETTER)
    refused: list[LetterRefused] = []  # kept: not something a replay can put right (the
    refused_count: int = 0  # first 100 of `refused_count`)


class DeadLettersPurged(OpsReply, frozen=True, kw_only=True):
    purged: int = 0


class UnknownSend(msgspec.Struct, frozen=True, kw_only=True):
    attempt_id: str
    chip_id: str
    doctor_id: str
    kind: str
    attempted_at: datetime
    unknown_at: datetime
    reason: str


class UnknownSendsListed(OpsReply, frozen=True, kw_only=True):
    sends: list[UnknownSend] = []


class UnknownSendSettledReply(OpsReply, frozen=True, kw_only=True):
    event_id: str | None = None
    duplicate: bool = False  # settled the same way before: nothing new stored


class DoctorErasedReport(OpsReply, frozen=True, kw_only=True):
    """What an erasure found and removed; all zeros when there was nothing (left) to erase."""

    doctor_ids: list[str] = []  # the doctors erased
    keys_deleted: int = 0  # doctor keys purged from `doctor_keys`: what they sealed is gone
    balancer_forgot: int = 0  # doctors whose backlog the balancer dropped (DoctorErased)
    deleted: dict[str, int] = {}  # stream -> messages deleted that held the phone or a text
