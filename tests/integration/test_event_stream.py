"""The one append against a real JetStream: every event log loses a race the same way
(`WriteConflict`), dedupes a retry by its event id, steps past foreign messages, and sends
the codec's headers where the contract says it does, none where it says none."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.activation.saga_log import ActivationLog
from julia_chips.balancer.route_log import RouteLog
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import activation as act
from julia_chips.contract import route as rt
from julia_chips.contract.fleet import FleetBrakeEngaged
from julia_chips.contract.subjects import (
    FLEET_BRAKE,
    JuliaHeader,
    Stream,
    activation_events,
    chip_events,
    route_events,
)
from julia_chips.health.brake_log import BrakeLog
from julia_chips.health.model.brake import BrakeState
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.event_stream import EventStream, WriteConflict, no_headers
from julia_chips.privacy.doctor_keys import DoctorKeys
from tests.conftest import new_chip_id
from tests.integration.test_event_log_contract import provisioned, started

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)  # only stored in events, never compared
# One writer appends; returns the subject and the second writer's append, which must lose.
Race = Callable[[NATS], Awaitable[tuple[str, Coroutine[Any, Any, object]]]]


def requested(chip_id: str, n: int) -> act.ActivationRequested:
    return act.ActivationRequested(event_id=f"{chip_id}:{n}:ActivationRequested",
                                   chip_id=chip_id, occurred_at=NOW)


def engaged(n: int) -> FleetBrakeEngaged:
    return FleetBrakeEngaged(event_id=f"brake-{n}", occurred_at=NOW, reason="bans",
                             bans_in_window=3, window_seconds=600.0,
                             until=NOW + timedelta(hours=1))


def assigned(doctor_id: str, command_id: str, chip_id: str) -> rt.ConversationAssigned:
    return rt.ConversationAssigned(event_id=f"{command_id}:assigned", doctor_id=doctor_id,
                                   command_id=command_id, occurred_at=NOW, chip_id=chip_id,
                                   consented=False)


async def chip_race(nc: NATS) -> tuple[str, Coroutine[Any, Any, object]]:
    chip = new_chip_id()
    await JetStreamChipEventLog(nc.jetstream()).append(chip, provisioned(chip), 0)
    return chip_events(chip), JetStreamChipEventLog(nc.jetstream()).append(chip, started(chip), 0)


async def saga_race(nc: NATS) -> tuple[str, Coroutine[Any, Any, object]]:
    chip = new_chip_id()
    await ActivationLog(nc.jetstream()).append(chip, [requested(chip, 1)], 0)
    return activation_events(chip), ActivationLog(nc.jetstream()).append(
        chip, [requested(chip, 2)], 0)


async def brake_race(nc: NATS) -> tuple[str, Coroutine[Any, Any, object]]:
    """Two monitors that both read the brake released."""
    first, second = BrakeLog(nc.jetstream()), BrakeLog(nc.jetstream())
    await first.load(BrakeState())
    await second.load(BrakeState())
    await first.append(engaged(1))
    return FLEET_BRAKE, second.append(engaged(2))


async def route_race(nc: NATS) -> tuple[str, Coroutine[Any, Any, object]]:
    """A deposed leader, which read the doctor before the new leader wrote."""
    deposed = RouteLog(nc.jetstream(), AckedPublisher(nc), DoctorKeys(nc.jetstream()))
    leader = RouteLog(nc.jetstream(), AckedPublisher(nc), DoctorKeys(nc.jetstream()))
    await leader.append(assigned("d1", "r1", "chip-a"))
    return route_events("d1"), deposed.append(assigned("d1", "r2", "chip-b"))


@pytest.mark.parametrize("race", [chip_race, saga_race, brake_race, route_race],
                         ids=["chip", "activation", "brake", "route"])
async def test_a_lost_race_is_a_write_conflict_in_every_log(nc: NATS, race: Race) -> None:
    subject, lose = await race(nc)
    with pytest.raises(WriteConflict) as lost:
        await lose
    assert (lost.value.subject, lost.value.expected) == (subject, 0)


async def test_the_brake_loser_reloads_and_sees_the_winner(js: JetStreamContext) -> None:
    first, second = BrakeLog(js), BrakeLog(js)
    await second.load(BrakeState())
    await first.append(engaged(1))
    with pytest.raises(WriteConflict):
        await second.append(engaged(2))
    assert (await second.load(BrakeState())).engaged
    await second.append(engaged(3))  # expects the winner's sequence now


async def test_a_retry_with_the_current_sequence_is_stored_once(js: JetStreamContext) -> None:
    chip = new_chip_id()
    stream: EventStream[act.ActivationEvent] = EventStream(js, Stream.ACTIVATIONS, no_headers)
    [first] = await stream.append(activation_events(chip), [requested(chip, 1)], 0)
    assert await stream.append(activation_events(chip), [requested(chip, 1)], first) == [first]
    assert [m.seq for m in (await stream.load(activation_events(chip))).messages] == [first]


async def test_load_steps_past_foreign_messages(js: JetStreamContext) -> None:
    """A foreign message stays forever: an append must expect it, or conflict for ever."""
    chip = new_chip_id()
    subject = activation_events(chip)
    stream: EventStream[act.ActivationEvent] = EventStream(js, Stream.ACTIVATIONS, no_headers)
    [first] = await stream.append(subject, [requested(chip, 1)], 0)
    foreign = (await js.publish(subject, b"\x00 not an event")).seq
    read = await stream.load(subject)
    assert [m.seq for m in read.messages] == [first, foreign] and read.last_seq == foreign
    assert (await stream.load(subject, after_seq=foreign)).last_seq == foreign
    with pytest.raises(WriteConflict):
        await stream.append(subject, [requested(chip, 2)], first)
    assert await stream.append(subject, [requested(chip, 2)], read.last_seq)


async def test_headers_come_from_the_codec_where_the_contract_has_them(
        nc: NATS, js: JetStreamContext) -> None:
    route_seq = await RouteLog(js, AckedPublisher(nc), DoctorKeys(js)).append(assigned("d2", "r1", "chip-a"))
    brake_log = BrakeLog(js)
    await brake_log.append(engaged(1))
    route = await js.get_msg(str(Stream.ROUTE_EVENTS), route_seq)
    brake = await js.get_msg(str(Stream.FLEET_EVENTS), brake_log.last_seq)
    assert route.headers is not None and brake.headers is not None
    assert route.headers[JuliaHeader.EVENT_TYPE] == "ConversationAssigned"
    assert route.headers[JuliaHeader.EVENT_VERSION] == "1"
    assert route.headers["Nats-Msg-Id"] == "r1:assigned"
    assert brake.headers["Nats-Msg-Id"] == "brake-1"
    assert JuliaHeader.EVENT_TYPE not in brake.headers
    assert JuliaHeader.EVENT_VERSION not in brake.headers
