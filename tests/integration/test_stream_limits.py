"""Every stream is bounded on a real nats-server: a full work queue refuses the next command
(the publisher sees it) instead of dropping an accepted one, a message above a stream's
largest is refused, and `ensure_streams` never shrinks a stream below what it holds."""

from __future__ import annotations

import logging

import msgspec
import pytest
from nats.js.api import DiscardPolicy, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from julia_chips.contract.subjects import Stream, chip_command
from julia_chips.jetstream.streams import (
    DAY,
    STREAM_LIMITS,
    KiB,
    MiB,
    StreamLimits,
    ensure_streams,
)
from tests.conftest import new_chip_id


async def test_every_stream_is_created_bounded_and_refuses_when_full(
        js: JetStreamContext) -> None:
    for stream, bound in STREAM_LIMITS.items():
        config = (await js.stream_info(stream)).config
        assert (config.max_bytes, config.max_msg_size, config.discard) == (
            bound.max_bytes, bound.max_msg_size, DiscardPolicy.NEW), stream
    assert (await js.stream_info(Stream.GATEWAY_IN)).config.max_age == 2 * DAY
    assert (await js.stream_info(Stream.DEAD_LETTER)).config.max_age == 14 * DAY


async def test_a_full_work_queue_refuses_the_next_command_and_keeps_the_accepted_ones(
        js: JetStreamContext) -> None:
    small = {**STREAM_LIMITS, Stream.CHIP_CMDS: StreamLimits(max_bytes=MiB, max_msg_size=64 * KiB)}
    await ensure_streams(js, limits=small)
    body = msgspec.json.encode({"type": "Resume", "command_id": "x", "pad": "p" * 60_000})
    accepted = 0
    with pytest.raises(APIError, match="maximum bytes"):
        for _ in range(100):
            await js.publish(chip_command(new_chip_id()), body)
            accepted += 1
    assert 0 < accepted < 100
    assert (await js.stream_info(Stream.CHIP_CMDS)).state.messages == accepted


async def test_a_message_above_the_largest_a_stream_takes_is_refused(
        js: JetStreamContext) -> None:
    with pytest.raises(APIError, match="message size exceeds maximum"):
        await js.publish(chip_command(new_chip_id()), b"x" * (64 * KiB + 1))


async def test_an_old_unbounded_stream_is_bounded_but_never_shrunk_below_what_it_holds(
        js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    await js.delete_stream(Stream.FLEET_EVENTS)
    await js.add_stream(StreamConfig(name=Stream.FLEET_EVENTS, subjects=["fleet.evt.>"],
                                     allow_direct=True))  # as an older release made it
    for n in range(40):
        await js.publish(f"fleet.evt.t{n}", b"e" * 60_000)
    held = (await js.stream_info(Stream.FLEET_EVENTS)).state.bytes
    small = {**STREAM_LIMITS, Stream.FLEET_EVENTS: StreamLimits(max_bytes=MiB,
                                                                max_msg_size=64 * KiB)}
    with caplog.at_level(logging.WARNING, "julia_chips.jetstream.streams"):
        await ensure_streams(js, limits=small)
    info = await js.stream_info(Stream.FLEET_EVENTS)
    assert info.state.messages == 40 and info.state.bytes == held  # nothing deleted
    assert info.config.max_bytes == -1 and info.config.discard == DiscardPolicy.NEW
    assert info.config.max_msg_size == 64 * KiB
    assert "FLEET_EVENTS holds" in caplog.text and "JULIA_STREAM_MAX_BYTES_FLEET_EVENTS" in caplog.text
    await ensure_streams(js)  # the default fits what it holds: applied
    assert (await js.stream_info(Stream.FLEET_EVENTS)).config.max_bytes == 64 * MiB
