"""Gateway observations in GATEWAY_OBS: the one wire form and the one way to store them.

`gw.obs.<instance>` carries what a chip's gateway reported (the health monitor reads every
kind, the activator waits for `connection`); `gw.sms.<account>` carries SMS (the activator
waits for a code). One JSON object per message, tagged by `type`, the fact under `signal`:

    {"type": "status", "signal": {"instance": "chip-0001", "message_id": "3EB0...",
     "remote_phone": "+5511...", "status": "DELIVERY_ACK", "observed_at": "2026-..."}}

Tags are pinned; fields may be added with defaults, never renamed, and unknown fields are
skipped, so old readers survive new producers. The tag is repeated in a header so a reader
can skip kinds it does not fold without decoding them.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec
from nats.js.api import Header

from julia_chips.contract.observations import (
    AccountNotice,
    ConnectionUpdate,
    InboundMessage,
    MessageStatus,
    Observation,
    SendRefused,
    SmsReceived,
    TrafficCounted,
)
from julia_chips.contract.subjects import JuliaHeader, gateway_observation, sms_observation
from julia_chips.jetstream.acked_publish import ACK_TIMEOUT, AckedPublisher, PubAck

OBSERVATION_HEADER = "Julia-Observation-Kind"


class Kind(StrEnum):
    CONNECTION = "connection"
    STATUS = "status"
    INBOUND = "inbound"
    SMS = "sms"
    SEND_REFUSED = "send_refused"
    ACCOUNT = "account"
    TRAFFIC = "traffic"


class Observed(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


class ConnectionObserved(Observed, frozen=True, kw_only=True, tag=Kind.CONNECTION.value):
    signal: ConnectionUpdate


class StatusObserved(Observed, frozen=True, kw_only=True, tag=Kind.STATUS.value):
    signal: MessageStatus


class InboundObserved(Observed, frozen=True, kw_only=True, tag=Kind.INBOUND.value):
    signal: InboundMessage


class SmsObserved(Observed, frozen=True, kw_only=True, tag=Kind.SMS.value):
    signal: SmsReceived


class SendRefusedObserved(Observed, frozen=True, kw_only=True, tag=Kind.SEND_REFUSED.value):
    signal: SendRefused


class AccountObserved(Observed, frozen=True, kw_only=True, tag=Kind.ACCOUNT.value):
    signal: AccountNotice


class TrafficObservedByGateway(Observed, frozen=True, kw_only=True, tag=Kind.TRAFFIC.value):
    signal: TrafficCounted


AnyObserved = (
    ConnectionObserved | StatusObserved | InboundObserved | SmsObserved | SendRefusedObserved
    | AccountObserved | TrafficObservedByGateway
)
_WRAP: dict[type, type[AnyObserved]] = {
    ConnectionUpdate: ConnectionObserved, MessageStatus: StatusObserved,
    InboundMessage: InboundObserved, SmsReceived: SmsObserved, SendRefused: SendRefusedObserved,
    AccountNotice: AccountObserved, TrafficCounted: TrafficObservedByGateway,
}
_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[AnyObserved] = msgspec.json.Decoder(AnyObserved)


class ObservationUnreadable(ValueError):
    """Bytes on an observation subject that are not an observation this version knows; the
    message names the malformed or out-of-bounds field, or the unknown tag."""


def encode_observation(observation: Observation) -> bytes:
    return _ENCODER.encode(_WRAP[type(observation)](signal=observation))  # type: ignore[arg-type]


def decode_observation(data: bytes) -> Observation:
    """:raises ObservationUnreadable: naming the bad field or the unknown tag."""
    try:
        return _DECODER.decode(data).signal
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ObservationUnreadable(str(exc)) from exc


def observation_kind(observation: Observation) -> str:
    """The pinned tag (`connection`, `sms`, …), also sent as a header."""
    return str(_WRAP[type(observation)].__struct_config__.tag)


def observation_subject(observation: Observation) -> str:
    """`gw.sms.<account>` for an SMS, `gw.obs.<instance>` for the rest.

    :raises SubjectTokenInvalid: a name that cannot be one subject token.
    """
    if isinstance(observation, SmsReceived):
        return sms_observation(observation.phone_account_id)
    return gateway_observation(observation.instance)


def dedupe_id(observation: Observation) -> str | None:
    """The id a repeated report shares with the first one (for JetStream's duplicate window)."""
    match observation:
        case MessageStatus():
            return f"{observation.instance}:{observation.message_id}:{observation.status}"
        case InboundMessage():
            return f"{observation.instance}:in:{observation.message_id}"
        case SmsReceived():
            return f"{observation.phone_account_id}:sms:{observation.sms_id}"
    return None


def observation_message(observation: Observation, *, msg_id: str | None = None,
                        raw_seq: int | None = None, part: tuple[int, int] | None = None
                        ) -> tuple[str, bytes, dict[str, str]]:
    """Subject, body and headers of one observation.

    :param msg_id: `Nats-Msg-Id`; by default derived from the fact (`dedupe_id`), so a report
        repeated within the duplicate window is stored once. The deriver passes the raw
        body's, so a redelivered body stores one observation.
    :param raw_seq: the GATEWAY_IN sequence of the body it came from, as `Julia-Raw-Seq` (the
        deriver's own position, read back after a crash).
    :param part: (n, of) when the body gave several observations, as `Julia-Raw-Part`: a
        crash after part n < of left the body half derived.
    :raises SubjectTokenInvalid: an instance or account name that cannot be one token.
    """
    headers = {OBSERVATION_HEADER: observation_kind(observation)}
    if (msg_id := msg_id or dedupe_id(observation)) is not None:
        headers[Header.MSG_ID] = msg_id
    if raw_seq is not None:
        headers[JuliaHeader.RAW_SEQ] = str(raw_seq)
    if part is not None:
        headers[JuliaHeader.RAW_PART] = f"{part[0]}/{part[1]}"
    return observation_subject(observation), encode_observation(observation), headers


async def publish_observation(publisher: AckedPublisher, observation: Observation, *,
                              timeout: float = ACK_TIMEOUT) -> PubAck:
    """Store one observation and wait for JetStream's ack; its `Nats-Msg-Id` derives from
    the fact, so a report repeated within the duplicate window is stored once.

    :param timeout: seconds to wait for the ack.
    :raises SubjectTokenInvalid: an instance or account name that cannot be one token.
    """
    subject, body, headers = observation_message(observation)
    return await publisher.publish(subject, body, headers, timeout=timeout)
