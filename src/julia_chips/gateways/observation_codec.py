"""The wire form of gateway observations on `gw.obs.<instance>` and `gw.sms.<account>`.

One JSON object per message, tagged by `type`, the observation under `signal`:

    {"type": "connection", "signal": {"instance": "chip-0001", "state": "open", ...}}

The tags `connection`, `status` and `inbound` are the ones the health monitor's reader
(`runtime/observation_feed.py`) decodes, so what the webhook edge writes it can read; `sms`
is the activator's. Tags are pinned; fields may be added with defaults, never renamed, and
unknown fields are skipped, so old readers survive new producers.
"""

from __future__ import annotations

import msgspec

from julia_chips.gateways.observations import (
    ConnectionUpdate,
    InboundMessage,
    MessageStatus,
    SmsReceived,
)

Observation = ConnectionUpdate | InboundMessage | MessageStatus | SmsReceived

OBSERVATION_HEADER = "Julia-Observation-Kind"  # the tag again: readers may skip kinds unread


class Observed(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


class ConnectionObserved(Observed, frozen=True, kw_only=True, tag="connection"):
    signal: ConnectionUpdate


class StatusObserved(Observed, frozen=True, kw_only=True, tag="status"):
    signal: MessageStatus


class InboundObserved(Observed, frozen=True, kw_only=True, tag="inbound"):
    signal: InboundMessage


class SmsObserved(Observed, frozen=True, kw_only=True, tag="sms"):
    signal: SmsReceived


AnyObserved = ConnectionObserved | StatusObserved | InboundObserved | SmsObserved
_WRAP: dict[type, type[AnyObserved]] = {
    ConnectionUpdate: ConnectionObserved, MessageStatus: StatusObserved,
    InboundMessage: InboundObserved, SmsReceived: SmsObserved,
}
_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[AnyObserved] = msgspec.json.Decoder(AnyObserved)


class ObservationUnreadable(ValueError):
    """Bytes on an observation subject that are not an observation this version knows."""


def encode_observation(observation: Observation) -> bytes:
    wrapped: AnyObserved
    match observation:
        case ConnectionUpdate():
            wrapped = ConnectionObserved(signal=observation)
        case MessageStatus():
            wrapped = StatusObserved(signal=observation)
        case InboundMessage():
            wrapped = InboundObserved(signal=observation)
        case SmsReceived():
            wrapped = SmsObserved(signal=observation)
    return _ENCODER.encode(wrapped)


def decode_observation(data: bytes) -> Observation:
    """One observation; ObservationUnreadable names the bad field or the unknown tag."""
    try:
        return _DECODER.decode(data).signal
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ObservationUnreadable(str(exc)) from exc


def observation_kind(observation: Observation) -> str:
    """The pinned tag (`connection`, `sms`, …), also sent as a header."""
    tag = _WRAP[type(observation)].__struct_config__.tag
    assert isinstance(tag, str)
    return tag
