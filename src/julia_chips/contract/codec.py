"""JSON on the wire: one Encoder and one typed Decoder per union, built once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import msgspec

from julia_chips.contract.chip import CHIP_EVENT_TYPES, AnyChipEvent, ChipEvent
from julia_chips.contract.chip_commands import AnyChipCommand, CommandReply
from julia_chips.contract.messages import MessageEvent
from julia_chips.contract.route import RouteEvent
from julia_chips.contract.subjects import JuliaHeader
from julia_chips.contract.upcasting import upcast

ENCODER = msgspec.json.Encoder()
_EVENT_DECODER = msgspec.json.Decoder(AnyChipEvent)
_COMMAND_DECODER = msgspec.json.Decoder(AnyChipCommand)
_REPLY_DECODER = msgspec.json.Decoder(CommandReply)
_CURRENT_VERSION = {cls.__struct_config__.tag: cls.version for cls in CHIP_EVENT_TYPES}


# Events that carry `Julia-Event-Type` and `Julia-Event-Version` (fleet and activation events
# carry neither: docs/contract.md, "Headers").
VersionedEvent = ChipEvent | RouteEvent | MessageEvent


def event_headers(event: VersionedEvent) -> dict[str, str]:
    """The type and version a reader needs to pick its upcaster before decoding."""
    return {
        JuliaHeader.EVENT_TYPE: event_type(event),
        JuliaHeader.EVENT_VERSION: str(event.version),
    }


def encode_event(event: ChipEvent) -> bytes:
    return ENCODER.encode(event)


def decode_event(data: bytes, headers: Mapping[str, str] | None = None) -> AnyChipEvent:
    """Decode a stored event, upcasting it first when it was written by an older version.

    :raises msgspec.ValidationError: or DecodeError, naming the bad field or header.
    :raises LookupError: an old version no upcaster lifts.
    """
    headers = headers or {}
    raw_version = headers.get(JuliaHeader.EVENT_VERSION, "0") or "0"
    if not (raw_version.isascii() and raw_version.isdigit()):  # `²` is a digit to isdigit
        raise msgspec.ValidationError(
            f"header {JuliaHeader.EVENT_VERSION} {raw_version[:20]!r} is not a version")
    version = int(raw_version)
    stored_type = headers.get(JuliaHeader.EVENT_TYPE, "")
    current = _CURRENT_VERSION.get(stored_type, 0)
    if version and version < current:
        obj = msgspec.json.decode(data)
        if not isinstance(obj, dict):  # the upcasters lift objects
            raise msgspec.ValidationError(f"Expected `object`, got `{type(obj).__name__}`")
        lifted = upcast(obj, stored_type, version, current)
        return cast(AnyChipEvent, msgspec.convert(lifted, AnyChipEvent))
    return cast(AnyChipEvent, _EVENT_DECODER.decode(data))


def decode_command(data: bytes) -> AnyChipCommand:
    """:raises msgspec.ValidationError: or DecodeError, naming the bad field."""
    return cast(AnyChipCommand, _COMMAND_DECODER.decode(data))


def encode_reply(reply: CommandReply) -> bytes:
    return ENCODER.encode(reply)


def decode_reply(data: bytes) -> CommandReply:
    return _REPLY_DECODER.decode(data)


def event_type(event: VersionedEvent) -> str:
    return str(event.__struct_config__.tag)
