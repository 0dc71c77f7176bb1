"""Commands through the full path: client -> CHIP_CMDS -> worker -> CHIP_EVENTS -> reply."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient, ChipIdInvalid
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.subjects import JuliaHeader, Stream
from julia_chips.embedded.nats_server import EmbeddedNats
from tests.conftest import crash_and_restart, new_chip_id
from tests.integration.dead_letter_reader import stored_dead_letters
from tests.integration.workers import running_worker


async def test_lifecycle_replies_name_state_and_event_sequences(nc: NATS, js: JetStreamContext) -> None:
    client = ChipClient(nc)
    chip = new_chip_id()
    async with running_worker(nc):
        r1 = await client.send(chip, cmd.Provision(command_id="p", phone_number="+5511987650000"))
        r2 = await client.send(chip, cmd.StartActivation(command_id="s"))
        r3 = await client.send(chip, cmd.CompleteActivation(command_id="c", instance="i", host="h"))
    assert [(r.ok, r.state) for r in (r1, r2, r3)] == [
        (True, "provisioning"), (True, "activating"), (True, "warming")]
    stored = await JetStreamChipEventLog(js).load(chip)
    assert [e.type for r in (r1, r2, r3) for e in r.events] == [
        "Provisioned", "ActivationStarted", "Activated"]
    assert [e.seq for r in (r1, r2, r3) for e in r.events] == [s.seq for s in stored]


async def test_same_command_twice_gives_one_set_of_events_and_the_same_reply(
        nc: NATS, js: JetStreamContext) -> None:
    client = ChipClient(nc)
    chip = new_chip_id()
    async with running_worker(nc):
        first = await client.send(chip, cmd.Provision(command_id="dup-1"))
        second = await client.send(chip, cmd.Provision(command_id="dup-1"))
    assert first == second and first.ok
    assert len(await JetStreamChipEventLog(js).load(chip)) == 1


async def test_refused_move_says_state_and_allowed_and_appends_nothing(
        nc: NATS, js: JetStreamContext) -> None:
    client = ChipClient(nc)
    chip = new_chip_id()
    async with running_worker(nc):
        await client.send(chip, cmd.Provision(command_id="p"))
        refused = await client.send(chip, cmd.PutInService(command_id="x"))
    assert refused.ok is False and refused.state == "provisioning"
    assert refused.allowed == ["activating", "retired"]
    assert "PutInService" in (refused.error or "")
    assert len(await JetStreamChipEventLog(js).load(chip)) == 1


BAD_BODIES = [
    (b"{not json", "invalid command: JSON is malformed"),
    (b'{"type": "Teleport", "command_id": "t1"}', "Invalid value 'Teleport' - at `$.type`"),
    (b'{"type": "Cool", "command_id": "t2"}', "Object missing required field `reason`"),
    (b'{"type": "ObserveTraffic", "command_id": "t3", "sent": "many"}',
     "Expected `int`, got `str` - at `$.sent`"),
    (b'{"type": "ObserveTraffic", "command_id": "t4", "sent": -3}', "at `$.sent`"),
    (b'{"type": "Provision", "command_id": "t5", "ddd": 7}', "at `$.ddd`"),
    (b'{"type": "Provision", "command_id": "t6", "colour": "red"}', "unknown field `colour`"),
]


async def test_bad_input_is_refused_with_reason_dead_lettered_and_chip_keeps_working(
        nc: NATS, js: JetStreamContext) -> None:
    client = ChipClient(nc)
    chip = new_chip_id()
    async with running_worker(nc):
        await client.send(chip, cmd.Provision(command_id="p"))
        for body, reason in BAD_BODIES:
            reply = await client.send_raw(chip, body)
            assert reply.ok is False and reason in (reply.error or ""), (body, reply.error)
        good = await client.send(chip, cmd.StartActivation(command_id="after-bad"))
    assert good.ok and good.state == "activating"
    letters = await stored_dead_letters(js, f"dlq.chip.{chip}")
    assert [data for data, _ in letters] == [body for body, _ in BAD_BODIES]
    assert all(reason.startswith("invalid command") for _, reason in letters)
    assert len(await JetStreamChipEventLog(js).load(chip)) == 2


@pytest.mark.parametrize("chip", ["hot", "chip-0001", "A1B2C3D4-0000-4000-8000-000000000001",
                                  "a1b2c3d40000400080000000000000001"])
async def test_a_command_for_a_chip_id_that_is_not_a_uuid_is_refused_naming_chip_id(
        nc: NATS, js: JetStreamContext, chip: str) -> None:
    """Refused by name and dead-lettered by the partition, so it never becomes a history the
    read models cannot hold; the client refuses it before anything is stored."""
    client = ChipClient(nc)
    with pytest.raises(ChipIdInvalid, match="chip_id must be a UUID"):
        await client.send(chip, cmd.Provision(command_id="p"))
    assert (await js.stream_info(Stream.CHIP_CMDS)).state.messages == 0
    body = msgspec.json.encode(cmd.Provision(command_id="p"))
    async with running_worker(nc):
        inbox = await nc.subscribe("_INBOX.not-a-uuid")
        await js.publish(f"chip.cmd.{chip}", body, headers={JuliaHeader.REPLY_TO: "_INBOX.not-a-uuid"})
        reply = msgspec.json.decode((await inbox.next_msg(timeout=10)).data, type=cmd.CommandReply)
    assert reply.ok is False and "chip_id" in (reply.error or "") and "not a UUID" in (reply.error or "")
    letters = await stored_dead_letters(js, "dlq.chip.>")
    assert [(data, reason.startswith("invalid command: chip_id")) for data, reason in letters] == [
        (body, True)]
    assert (await js.stream_info(Stream.CHIP_EVENTS)).state.messages == 0


async def test_a_chips_commands_apply_in_order_while_chips_run_concurrently(
        nc: NATS, js: JetStreamContext) -> None:
    chips = [new_chip_id() for _ in range(20)]
    encoder = msgspec.json.Encoder()
    async with running_worker(nc):
        client = ChipClient(nc)
        await asyncio.gather(*(client.send(c, cmd.Provision(command_id="p")) for c in chips))
        await asyncio.gather(*(client.send(c, cmd.StartActivation(command_id="s")) for c in chips))
        await asyncio.gather(*(client.send(c, cmd.CompleteActivation(
            command_id="c", instance="i", host="h")) for c in chips))
        for n in range(30):  # fire and forget: order is the stream's, not ours
            for c in chips:
                await js.publish(f"chip.cmd.{c}", encoder.encode(
                    cmd.ObserveTraffic(command_id=f"o{n}", sent=n)))
        last = await asyncio.gather(*(client.send(c, cmd.Retire(command_id="r", reason="done"))
                                      for c in chips))
    assert all(r.ok and r.state == "retired" for r in last)
    log = JetStreamChipEventLog(js)
    for c in chips:
        observed = [s.event for s in await log.load(c) if type(s.event).__name__ == "TrafficObserved"]
        assert [e.command_id for e in observed] == [f"o{n}" for n in range(30)]
    info = await js.stream_info(Stream.CHIP_CMDS)
    assert info.state.messages == 0  # every command acked and removed from the work queue


@pytest.mark.own_nats_server
async def test_commands_flow_again_after_the_server_crashes_and_comes_back(
        nats_server: EmbeddedNats | None, nc: NATS, js: JetStreamContext) -> None:
    """The crash takes the partitions' open pull requests with it; they ask again, and the
    commands sent after it are handled once each."""
    client = ChipClient(nc)
    chips = [new_chip_id() for _ in range(8)]
    async with running_worker(nc):
        for chip in chips:
            assert (await client.send(chip, cmd.Provision(command_id="p"))).ok
        await crash_and_restart(nats_server, nc)
        replies = await asyncio.gather(*(
            client.send(chip, cmd.StartActivation(command_id="s"), timeout=20) for chip in chips))
    assert [(r.ok, r.state) for r in replies] == [(True, "activating")] * len(chips)
    log = JetStreamChipEventLog(js)
    for chip in chips:
        assert [type(s.event).__name__ for s in await log.load(chip)] == [
            "Provisioned", "ActivationStarted"]
