"""Balancer requests on `route.cmd.<verb>` and routing events on `route.evt.<doctor_id>`.

Requests come from outside (Julia's conversation engine, webhooks), so they are decoded
strictly: unknown fields are typos, and bounds keep nonsense out of the audit log. Route
events are read leniently (old readers skip new fields). Tags are the wire names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, cast

import msgspec

from julia_chips.contract.chip_commands import CommandId, Phone, Subject
from julia_chips.contract.subjects import JuliaHeader
from julia_chips.contract.upcasting import upcast
from julia_chips.privacy.sealing import Sealed, open_sealed, seal

# A doctor id is a subject token (`route.evt.<doctor_id>`): no dots, spaces or wildcards.
DoctorId = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                       pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
# WhatsApp's own limit on a text message is 4096 characters; blank text is a caller's bug.
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"\S")]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ChipRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\s.*>]+$")]
Kind = Literal["reply", "prospecting"]


# The gateway's own id of an inbound message (Evolution `3A5F…`, Cloud API `wamid.…`).
GatewayMessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RouteCommand(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    command_id: CommandId
    reply_to: Subject | None = None


class SendRequest(RouteCommand, frozen=True, kw_only=True, tag="SendRequest"):
    """Send `text` to a doctor through whichever chip the balancer picks."""

    doctor_id: DoctorId
    doctor_phone: Phone
    text: Text
    kind: Kind
    consented: bool = False  # the doctor wrote to us or opted in


class OptOut(RouteCommand, frozen=True, kw_only=True, tag="OptOut"):
    doctor_id: DoctorId
    source: Source


class OptIn(RouteCommand, frozen=True, kw_only=True, tag="OptIn"):
    """Lifts the doctor's opt-out and, when `doctor_phone` is given, that phone's."""

    doctor_id: DoctorId
    source: Source
    doctor_phone: Phone | None = None


class InboundMessage(RouteCommand, frozen=True, kw_only=True, tag="InboundMessage"):
    """A doctor wrote to a chip: an opt-out keyword, or consent to keep talking.

    Julia's engine names the doctor (`doctor_id`); the gateways know only the phone it came
    from (`doctor_phone`), and an opt-out word then opts that phone out fleet-wide, under
    whatever doctor id it is sent to later. At least one of the two is required.
    """

    doctor_id: DoctorId | None = None
    doctor_phone: Phone | None = None
    text: Annotated[str, msgspec.Meta(max_length=65536)]
    chip_id: ChipRef | None = None
    message_id: GatewayMessageId | None = None  # the gateway's id of the inbound message

    def __post_init__(self) -> None:
        if self.doctor_id is None and self.doctor_phone is None:
            raise ValueError("doctor_id or doctor_phone is required")


class ForgetDoctor(RouteCommand, frozen=True, kw_only=True, tag="ForgetDoctor"):
    """The doctor is being erased (`ops.cmd.doctor.erase`): the balancer cancels what waits
    for them in the backlog (it holds their phone and texts) and records `DoctorErased`."""

    doctor_id: DoctorId


AnyRouteCommand = SendRequest | OptOut | OptIn | InboundMessage | ForgetDoctor
VERBS: dict[str, type[RouteCommand]] = {
    "send": SendRequest, "optout": OptOut, "optin": OptIn, "inbound": InboundMessage,
    "forget": ForgetDoctor}
_DECODERS = {verb: msgspec.json.Decoder(kind) for verb, kind in VERBS.items()}


class BadRouteCommand(ValueError):
    """A request that cannot be routed as written; the message names the field."""


def decode_route_command(verb: str, data: bytes) -> AnyRouteCommand:
    """Decode the body published to `route.cmd.<verb>`; `type` may be left out.

    :raises BadRouteCommand: unknown verb, malformed JSON or a field out of bounds.
    """
    decoder = _DECODERS.get(verb)
    if decoder is None:
        raise BadRouteCommand(f"unknown request route.cmd.{verb}; expected one of "
                              f"{', '.join(sorted(VERBS))}")
    try:
        return cast(AnyRouteCommand, decoder.decode(data))
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise BadRouteCommand(f"invalid {VERBS[verb].__struct_config__.tag}: {err}") from err


class RouteEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    version: ClassVar[int] = 1  # the `Julia-Event-Version` header (contract/codec.py)
    event_id: str  # `<command_id>:<n>`, also the Nats-Msg-Id
    doctor_id: str
    command_id: str
    occurred_at: datetime


class ConversationAssigned(RouteEvent, frozen=True, kw_only=True, tag="ConversationAssigned"):
    chip_id: str
    consented: bool
    # `phones.phone_key` of the phone sent to: an inbound from it finds this doctor
    phone_key: str | None = None


class ConversationReassigned(RouteEvent, frozen=True, kw_only=True,
                             tag="ConversationReassigned"):
    from_chip_id: str
    chip_id: str
    consented: bool
    reason: str  # why the old chip can no longer serve


class DoctorOptedOut(RouteEvent, frozen=True, kw_only=True, tag="DoctorOptedOut"):
    source: str  # "keyword" for an inbound PARAR/SAIR/..., else the caller's name
    phone_key: str | None = None  # set: that phone is opted out too, under any doctor id


class DoctorOptedIn(RouteEvent, frozen=True, kw_only=True, tag="DoctorOptedIn"):
    source: str
    phone_key: str | None = None  # set: that phone's opt-out is lifted too


class DoctorReplied(RouteEvent, frozen=True, kw_only=True, tag="DoctorReplied"):
    """The doctor wrote to us: the conversation is consented from now on."""

    chip_id: str | None = None


class DoctorQuarantined(RouteEvent, frozen=True, kw_only=True, tag="DoctorQuarantined"):
    """Prospected from a chip WhatsApp banned: not contacted from another number until then."""

    chip_id: str
    until: datetime
    reason: str


class QueuedContent(msgspec.Struct, frozen=True, kw_only=True):
    """What a queued send holds of the doctor: sealed together in `RequestQueued.sealed`."""

    doctor_phone: str
    text: str


_CONTENT = msgspec.json.Decoder(QueuedContent)


class RequestQueued(RouteEvent, frozen=True, kw_only=True, tag="RequestQueued"):
    """A send no chip can take now: the durable backlog entry, served in order later.

    v2 stores the phone and the text sealed under the doctor's key (`sealed`), never in the
    clear: ROUTE_EVENTS is kept for ever, and deleting the key erases them. In memory the
    balancer holds them opened (`opened_with`); both None once the key is gone (erased).
    v1 history kept them in the clear.
    """

    version: ClassVar[int] = 2
    request_id: str  # the SendRequest's command_id
    doctor_phone: str | None = None
    text: str | None = None
    kind: str
    consented: bool
    reason: str
    phone_key: str | None = None  # `phones.phone_key` of the phone: opt-outs match it sealed
    sealed: Sealed | None = None  # QueuedContent under the doctor's key (privacy/sealing.py)

    def sealed_with(self, key: bytes) -> RequestQueued:
        """The wire form: the phone and text sealed under `key`, the clear fields left out."""
        if self.doctor_phone is None or self.text is None:
            return self
        content = msgspec.json.encode(QueuedContent(doctor_phone=self.doctor_phone,
                                                    text=self.text))
        return msgspec.structs.replace(self, doctor_phone=None, text=None,
                                       sealed=seal(content, self.doctor_id, key))

    def opened_with(self, key: bytes | None) -> RequestQueued:
        """The phone and text opened with the doctor's key; both None when it is gone."""
        if self.sealed is None:
            return self  # v1 history, in the clear (or already opened)
        plain = open_sealed(self.sealed, key)
        content = _CONTENT.decode(plain) if plain is not None else None
        return msgspec.structs.replace(
            self, sealed=None, doctor_phone=content.doctor_phone if content else None,
            text=content.text if content else None)

    @property
    def erased(self) -> bool:
        return self.sealed is None and (self.doctor_phone is None or self.text is None)


class DoctorErased(RouteEvent, frozen=True, kw_only=True, tag="DoctorErased"):
    """The doctor's personal data was erased (their key deleted, copies scanned away); it
    holds none itself. Readers clear what they kept of the doctor, but not the opt-out."""


class RequestServed(RouteEvent, frozen=True, kw_only=True, tag="RequestServed"):
    request_id: str
    chip_id: str


class RequestCancelled(RouteEvent, frozen=True, kw_only=True, tag="RequestCancelled"):
    """A queued send that must no longer go out (the doctor opted out meanwhile)."""

    request_id: str
    reason: str


AnyRouteEvent = (
    ConversationAssigned | ConversationReassigned | DoctorOptedOut | DoctorOptedIn
    | DoctorReplied | DoctorQuarantined | RequestQueued | RequestServed | RequestCancelled
    | DoctorErased
)
ROUTE_EVENT_TYPES: tuple[type[RouteEvent], ...] = (
    ConversationAssigned, ConversationReassigned, DoctorOptedOut, DoctorOptedIn, DoctorReplied,
    DoctorQuarantined, RequestQueued, RequestServed, RequestCancelled, DoctorErased)
_EVENT_DECODER = msgspec.json.Decoder(AnyRouteEvent)
_CURRENT_VERSION = {cls.__struct_config__.tag: cls.version for cls in ROUTE_EVENT_TYPES}


def decode_route_event(data: bytes, headers: Mapping[str, str] | None = None) -> AnyRouteEvent:
    """Decode a stored route event, upcast first when an older version wrote it
    (`Julia-Event-Type`, `Julia-Event-Version`). A sealed `RequestQueued` stays sealed:
    opening it needs the doctor's key (`RequestQueued.opened_with`)."""
    headers = headers or {}
    version = int(headers.get(JuliaHeader.EVENT_VERSION, "0") or 0)
    stored_type = headers.get(JuliaHeader.EVENT_TYPE, "")
    current = _CURRENT_VERSION.get(stored_type, 0)
    if version and version < current:
        lifted = upcast(msgspec.json.decode(data), stored_type, version, current)
        return cast(AnyRouteEvent, msgspec.convert(lifted, AnyRouteEvent))
    return cast(AnyRouteEvent, _EVENT_DECODER.decode(data))


class ReplyStatus(StrEnum):
    """What became of a request; for a send also its attempt's outcome in the ledger."""

    DISPATCHED = "dispatched"  # the gateway took it
    QUEUED = "queued"  # waits in the backlog
    FAILED = "failed"  # the gateway said no before anything left
    UNKNOWN = "unknown"  # no definite answer: held for review, never re-sent
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    NOTED = "noted"  # an inbound message that changed nothing or only consent
    ERASED = "erased"  # a ForgetDoctor: the backlog holds nothing of the doctor any more


class RefusalReason(StrEnum):
    """The short code of a refused request, for callers to act on."""

    OPTED_OUT = "opted_out"
    BRAKE_ENGAGED = "brake_engaged"
    QUIET_HOURS = "quiet_hours"
    QUARANTINED = "quarantined"
    FREQUENCY_CAP = "frequency_cap"
    INVALID = "invalid"  # malformed, or given up after too many deliveries


class RouteReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer on `reply_to`: where the message went, or why it was refused."""

    ok: bool
    chip_id: str | None = None
    status: ReplyStatus | None = None
    error: str | None = None
    reason: str | None = None  # a refusal's `RefusalReason`; for `queued`, why it waits
