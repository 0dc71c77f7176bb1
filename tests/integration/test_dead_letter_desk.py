"""Dead letters can be listed, shown, replayed (one or all) and purged, over NATS."""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import operations as ops
from julia_chips.contract.chip import Provisioned
from julia_chips.contract.subjects import OpsSubject, Stream
from julia_chips.jetstream.dead_letters import send_to_dead_letters
from tests.conftest import new_chip_id
from tests.integration.ops_desk import ask, running_desk
from tests.integration.test_partition_consumer import given_up
from tests.integration.workers import running_worker

LIST, SHOW = OpsSubject.DEAD_LETTERS_LIST, OpsSubject.DEAD_LETTERS_SHOW
REPLAY, PURGE = OpsSubject.DEAD_LETTERS_REPLAY, OpsSubject.DEAD_LETTERS_PURGE
BODY = b'{"type":"Provision","command_id":"c-1","phone_number":"+5511987654321"}'


async def _letters(js: JetStreamContext) -> None:
    """Three letters: two chip commands, one projection event."""
    await send_to_dead_letters(js, "chip", "a", BODY, "gave up after 5 deliveries",
                               "chip.cmd.3.a")
    await send_to_dead_letters(js, "route", "send", b'{"nope"', "invalid SendRequest",
                               "route.cmd.send")
    await send_to_dead_letters(js, "projection", "chips", b'{"type":"Activated"}',
                               "projection chips, seq 9: DataError", "chip.evt.a")


async def test_list_pages_oldest_first_and_filters_by_kind(nc: NATS, js: JetStreamContext
                                                         ) -> None:
    await _letters(js)
    async with running_desk(nc):
        first = await ask(nc, LIST, {"limit": 2}, ops.DeadLettersListed)
        rest = await ask(nc, LIST, {"after_seq": first.next_after}, ops.DeadLettersListed)
        chips = await ask(nc, LIST, {"kind": "chip"}, ops.DeadLettersListed)
    assert [(x.subject, x.original_subject) for x in first.letters] == [
        ("dlq.chip.a", "chip.cmd.3.a"), ("dlq.route.send", "route.cmd.send")]
    assert first.letters[0].reason == "gave up after 5 deliveries"
    assert first.letters[0].body is None and first.letters[0].size == len(BODY)
    assert [x.subject for x in rest.letters] == ["dlq.projection.chips"]
    assert rest.next_after is None
    assert [x.subject for x in chips.letters] == ["dlq.chip.a"]


async def test_show_gives_the_body_and_an_unknown_seq_is_named(nc: NATS,
                                                               js: JetStreamContext) -> None:
    await _letters(js)
    async with running_desk(nc):
        shown = await ask(nc, SHOW, {"seq": 1}, ops.DeadLetterShown)
        missing = await ask(nc, SHOW, {"seq": 99}, ops.DeadLetterShown)
    assert shown.letter is not None and shown.letter.body == BODY.decode()
    assert missing.ok is False and missing.error == "seq: no dead letter 99"


async def test_replay_sends_the_stored_bytes_to_the_stored_subject_and_removes_the_letter(
        nc: NATS, js: JetStreamContext) -> None:
    await _letters(js)
    async with running_desk(nc):
        replayed = await ask(nc, REPLAY, {"seq": 1}, ops.DeadLettersReplayed)
        again = await ask(nc, REPLAY, {"seq": 1}, ops.DeadLettersReplayed)
        left = await ask(nc, LIST, {}, ops.DeadLettersListed)
    assert replayed.ok and replayed.replayed == 1
    resent = await js.get_msg(Stream.CHIP_CMDS, subject="chip.cmd.3.a")
    assert resent.data == BODY and resent.subject == "chip.cmd.3.a"
    assert again.ok is False and again.error == "seq: no dead letter 1"
    assert [x.seq for x in left.letters] == [2, 3]


async def test_replay_all_refuses_a_projection_letter_and_keeps_it(nc: NATS,
                                                                  js: JetStreamContext) -> None:
    await _letters(js)
    async with running_desk(nc):
        replayed = await ask(nc, REPLAY, {"all": True}, ops.DeadLettersReplayed)
        left = await ask(nc, LIST, {}, ops.DeadLettersListed)
    assert replayed.replayed == 2 and replayed.refused_count == 1
    assert replayed.refused[0].seq == 3 and "chip.evt.a" in replayed.refused[0].reason
    assert [x.subject for x in left.letters] == ["dlq.projection.chips"]
    assert (await js.stream_info(Stream.CHIP_EVENTS)).state.messages == 0  # nothing re-appended
    resent = await js.get_msg(Stream.ROUTE_CMDS, subject="route.cmd.send")
    assert resent.data == b'{"nope"'


async def test_a_chip_command_given_up_is_carried_out_once_replayed(
        nc: NATS, js: JetStreamContext) -> None:
    chip = new_chip_id()
    gave_up = await given_up(nc, js, chip)
    assert gave_up.error == "gave up after 2 deliveries"
    async with running_worker(nc), running_desk(nc):
        replayed = await ask(nc, REPLAY, {"all": True, "kind": "chip", "key": chip},
                             ops.DeadLettersReplayed)
        async with asyncio.timeout(10):
            while not (events := await JetStreamChipEventLog(js).load(chip)):  # noqa: ASYNC110 (polling the real stream)
                await asyncio.sleep(0.05)
        left = await ask(nc, LIST, {"kind": "chip", "key": chip}, ops.DeadLettersListed)
    assert replayed.replayed == 1
    assert [type(s.event) for s in events] == [Provisioned]
    assert left.letters == []


async def test_purge_is_explicit_and_says_how_many(nc: NATS, js: JetStreamContext) -> None:
    await _letters(js)
    await send_to_dead_letters(js, "chip", "b", BODY, "why", "chip.cmd.1.b")
    async with running_desk(nc):
        blind = await ask(nc, PURGE, {}, ops.DeadLettersPurged)
        chips = await ask(nc, PURGE, {"kind": "chip"}, ops.DeadLettersPurged)
        rest = await ask(nc, PURGE, {"all": True}, ops.DeadLettersPurged)
    assert blind.ok is False and blind.error is not None and blind.error.startswith("kind:")
    assert (chips.ok, chips.purged) == (True, 2)
    assert (rest.ok, rest.purged) == (True, 2)
    assert (await js.stream_info(Stream.DEAD_LETTER)).state.messages == 0


async def test_bad_requests_are_answered_naming_the_field(nc: NATS, js: JetStreamContext
                                                         ) -> None:
    async with running_desk(nc):
        limit = await ask(nc, LIST, {"limit": "all"}, ops.OpsReply)
        typo = await ask(nc, LIST, {"limt": 5}, ops.OpsReply)
        kind = await ask(nc, PURGE, {"kind": "chip.>"}, ops.OpsReply)
        junk = await ask(nc, REPLAY, b"\xff not json", ops.OpsReply)
        key = await ask(nc, LIST, {"key": "a"}, ops.OpsReply)
        alive = await ask(nc, LIST, {}, ops.DeadLettersListed)
    assert limit.error is not None and "$.limit" in limit.error
    assert typo.error is not None and "limt" in typo.error
    assert kind.error is not None and "$.kind" in kind.error
    assert junk.ok is False and junk.error is not None and "ReplayDeadLetters" in junk.error
    assert key.error == "key: needs a kind"
    assert alive.ok  # the desk outlived all of it


async def test_a_request_with_a_reply_subject_outside_the_inboxes_is_not_carried_out(
        nc: NATS, js: JetStreamContext) -> None:
    await _letters(js)
    async with running_desk(nc):
        await nc.publish(str(PURGE), msgspec.json.encode({"all": True}), reply="chip.evt.x")
        await nc.flush()
        await asyncio.sleep(0.3)
        left = await ask(nc, LIST, {}, ops.DeadLettersListed)
    assert len(left.letters) == 3
