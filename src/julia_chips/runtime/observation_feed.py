"""The health monitor's input: typed gateway signals on `gw.obs.<instance>` (stream GATEWAY_OBS).

The webhook edge decodes a gateway's POST into a signal and publishes it here with
`publish_signal`; the health monitor is the only reader. One JSON object per message, tagged
by `type`, the signal itself under `signal`:

    {"type": "status", "signal": {"instance": "chip-0001", "message_id": "3EB0...",
     "remote_phone": "+5511...", "status": "DELIVERY_ACK", "observed_at": "2026-..."}}

A receipt or inbound message carries `Nats-Msg-Id`, so a webhook retried by the gateway is
stored once.
"""

from __future__ import annotations

import msgspec
from nats.js.api import Header
from nats.js.client import JetStreamContext

from julia_chips.actors.signals import AccountNotice, HealthSignal, SendRefused, TrafficCounted
from julia_chips.gateways.observations import ConnectionUpdate, InboundMessage, MessageStatus
from julia_chips.subjects import gateway_observation


class Observed(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


class ConnectionObserved(Observed, frozen=True, kw_only=True, tag="connection"):
    signal: ConnectionUpdate


class StatusObserved(Observed, frozen=True, kw_only=True, tag="status"):
    signal: MessageStatus


class InboundObserved(Observed, frozen=True, kw_only=True, tag="inbound"):
    signal: InboundMessage


class SendRefusedObserved(Observed, frozen=True, kw_only=True, tag="send_refused"):
    signal: SendRefused


class AccountObserved(Observed, frozen=True, kw_only=True, tag="account"):
    signal: AccountNotice


class TrafficObservedByGateway(Observed, frozen=True, kw_only=True, tag="traffic"):
    signal: TrafficCounted


AnyObserved = (
    ConnectionObserved | StatusObserved | InboundObserved | SendRefusedObserved
    | AccountObserved | TrafficObservedByGateway
)
_WRAP: dict[type, type[AnyObserved]] = {
    ConnectionUpdate: ConnectionObserved, MessageStatus: StatusObserved,
    InboundMessage: InboundObserved, SendRefused: SendRefusedObserved,
    AccountNotice: AccountObserved, TrafficCounted: TrafficObservedByGateway,
}
_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[AnyObserved] = msgspec.json.Decoder(AnyObserved)


class SignalRejected(ValueError):
    """A message on `gw.obs.>` that is not a valid signal; the message says why."""


def encode_signal(signal: HealthSignal) -> bytes:
    return _ENCODER.encode(_WRAP[type(signal)](signal=signal))  # type: ignore[arg-type]


def decode_signal(data: bytes) -> HealthSignal:
    """:raises SignalRejected: naming the malformed or out-of-bounds field."""
    try:
        return _DECODER.decode(data).signal
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise SignalRejected(f"malformed signal: {err}") from err


def dedupe_id(signal: HealthSignal) -> str | None:
    """The id a repeated webhook shares with the first one (for JetStream's duplicate window)."""
    match signal:
        case MessageStatus():
            return f"{signal.instance}:{signal.message_id}:{signal.status}"
        case InboundMessage():
            return f"{signal.instance}:in:{signal.message_id}"
    return None


async def publish_signal(js: JetStreamContext, signal: HealthSignal) -> None:
    """Store a signal for the health monitor (for senders other than the webhook edge, which
    writes the same wire form with gateways.observation_codec).

    :raises SubjectTokenInvalid: an instance name that cannot be one subject token.
    """
    msg_id = dedupe_id(signal)
    headers = {str(Header.MSG_ID): msg_id} if msg_id else None
    await js.publish(gateway_observation(signal.instance), encode_signal(signal), headers=headers)
