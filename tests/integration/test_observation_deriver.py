"""The observation deriver over real JetStream: a SIGKILL between storing observations and
acking their raw bodies, a restart, and still one observation per raw payload, in the order
of the bodies; refused stores rewind to the ack floor; a backlog past the window waits its
turn; a server crash in the middle loses and repeats nothing; a stored body the decoders
refuse goes to the dead letters with the reason; an older durable keeps its place; a
body of several observations cut between them by a crash is derived again whole."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy
from nats.js.client import JetStreamContext

from julia_chips.contract.observations import InboundMessage, SmsReceived
from julia_chips.contract.subjects import JuliaHeader, Stream
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.ingest.deriver import ObservationDeriver, derive
from julia_chips.ingest.observation_log import decode_observation, observation_message
from julia_chips.jetstream.acked_publish import AckedPublisher, PubAck
from tests.conftest import crash_and_restart
from tests.integration.ingress_fixtures import (
    FAST_DERIVER,
    Ingress,
    deriving,
    ingress_only,
    stamped,
    stored,
    until_derived,
)
from tests.integration.workers import kill

__all__ = ["ingress_only"]

FIXTURES = Path(__file__).parent.parent / "fixtures"
UPSERTS, SMS = 60, 10
LATE = 10  # bodies that arrive while the deriver is down
STALL_AFTER = 20


def upsert(n: int) -> bytes:
    body = json.loads((FIXTURES / "evolution_messages_upsert.json").read_bytes())
    body["data"]["key"]["id"] = f"MSG{n:04d}"
    return json.dumps(body).encode()


def sms(n: int) -> bytes:
    body = json.loads((FIXTURES / "salvy_sms_received_v3.json").read_bytes())
    body["data"]["id"] = f"sms_{n:04d}"
    return json.dumps(body).encode()


def start_deriver(nats_url: str, tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JULIA_TEST_STALL_AFTER": str(STALL_AFTER)}
    with (tmp / "deriver.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.deriver_process", nats_url,
             str(tmp / "stalled")], env=env, stdout=out, stderr=subprocess.STDOUT)


async def observed_ids(js: JetStreamContext) -> Counter[str]:
    """The message id of every inbound message and SMS in GATEWAY_OBS, with its count."""
    last = (await js.stream_info(Stream.GATEWAY_OBS)).state.last_seq
    ids: Counter[str] = Counter()
    for seq in range(1, last + 1):
        observation = decode_observation((await js.get_msg(Stream.GATEWAY_OBS, seq)).data)
        if isinstance(observation, InboundMessage):
            ids[observation.message_id] += 1
        elif isinstance(observation, SmsReceived):
            ids[observation.sms_id] += 1
    return ids


@pytest.mark.parametrize("down_past_the_dedupe_window", [False, True])
async def test_a_killed_deriver_restarted_stores_one_observation_per_payload(
        ingress_only: Ingress, nc: NATS, js: JetStreamContext, nats_url: str,
        tmp_path: Path, down_past_the_dedupe_window: bool) -> None:
    await ObservationDeriver(nc, FAST_DERIVER).prepare()  # before the first webhook
    proc = start_deriver(nats_url, tmp_path)
    try:
        ignored = (FIXTURES / "salvy_other_event.json").read_bytes()
        for n in range(UPSERTS):
            assert (await ingress_only.evolution(stamped(upsert(n), ingress_only.clock)))[0] == 200
            if n % 6 == 0:
                assert (await ingress_only.salvy(sms(n // 6)))[0] == 200
            if n % 12 == 0:
                assert (await ingress_only.salvy(ignored))[0] == 200  # stored, never derived
        async with asyncio.timeout(20):
            while not (tmp_path / "stalled").exists():
                assert proc.poll() is None, (tmp_path / "deriver.log").read_text()
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # let the next ones be stored (unacked) or hang unstored
    finally:
        kill(proc)
    info = await js.consumer_info(Stream.GATEWAY_IN, FAST_DERIVER.durable)
    unacked = info.num_ack_pending
    assert unacked > 0 and await stored(js, Stream.GATEWAY_OBS) > STALL_AFTER  # the crash hit
    # between the stores and the acks, and before some stores
    for n in range(UPSERTS, UPSERTS + LATE):  # JetStream would hand these out first
        assert (await ingress_only.evolution(stamped(upsert(n), ingress_only.clock)))[0] == 200
    if down_past_the_dedupe_window:  # JetStream forgets the stored ids: no dedupe to lean on
        config = (await js.stream_info(Stream.GATEWAY_OBS)).config
        await js.update_stream(dataclasses.replace(config, duplicate_window=0.5))
        await asyncio.sleep(1.0)

    async with deriving(nc):
        await until_derived(js, timeout=15)
    in_order = [one for n in range(UPSERTS) for one in
                [f"MSG{n:04d}", *([f"sms_{n // 6:04d}"] if n % 6 == 0 else [])]]
    in_order += [f"MSG{n:04d}" for n in range(UPSERTS, UPSERTS + LATE)]
    expected = set(in_order)
    ids = await observed_ids(js)
    assert set(ids) == expected
    assert list(ids) == in_order  # the restart rewound: still the order the bodies came in
    assert [i for i, times in ids.items() if times != 1] == [], ids
    assert await stored(js, Stream.GATEWAY_OBS) == len(expected)  # nothing else either
    assert await stored(js, Stream.DEAD_LETTER) == 0


async def test_an_undecodable_stored_body_goes_to_dead_letters_and_the_rest_flows(
        nc: NATS, js: JetStreamContext) -> None:
    async with deriving(nc) as deriver:
        await js.publish("gw.in.evolution.chip-0001", b'{"event": "connection.update"')
        await js.publish("gw.in.evolution.chip-0001", upsert(1))
        await until_derived(js)
    assert deriver.rejected == 1 and deriver.derived == 1
    letter = await js.get_last_msg(Stream.DEAD_LETTER, "dlq.webhook.evolution.chip-0001")
    assert letter.data == b'{"event": "connection.update"'
    assert letter.headers is not None
    assert "evolution webhook" in letter.headers[JuliaHeader.DLQ_REASON]
    assert letter.headers[JuliaHeader.DLQ_SUBJECT] == "gw.in.evolution.chip-0001"
    ids = await observed_ids(js)
    assert ids == Counter({"MSG0001": 1})


async def test_a_refused_store_rewinds_and_every_observation_lands_in_order_once(
        nc: NATS, js: JetStreamContext) -> None:
    """GATEWAY_OBS refuses new messages for a while (full, discard-new): the deriver goes back
    to its ack floor and tries again until they land, without a gap, a repeat or a swap."""
    config = (await js.stream_info(Stream.GATEWAY_OBS)).config
    await js.update_stream(dataclasses.replace(config, max_msgs=5, discard=DiscardPolicy.NEW))
    async with deriving(nc):
        for n in range(40):
            await js.publish("gw.in.evolution.chip-0001", upsert(n))
        await asyncio.sleep(0.5)  # refusals meet the deriver, which rewinds and retries
        assert await stored(js, Stream.GATEWAY_OBS) == 5
        await js.update_stream(config)
        await until_derived(js, timeout=10)
    ids = await observed_ids(js)
    assert list(ids) == [f"MSG{n:04d}" for n in range(40)]
    assert set(ids.values()) == {1}


async def test_a_durable_acked_one_by_one_moves_to_cumulative_acks_at_its_floor(
        nc: NATS, js: JetStreamContext) -> None:
    """A durable an earlier version created (explicit acks) keeps its place: bodies it acked
    are not derived again, the ones after are."""
    await js.add_consumer(Stream.GATEWAY_IN, ConsumerConfig(
        durable_name=FAST_DERIVER.durable, ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW))
    for n in range(6):
        await js.publish("gw.in.evolution.chip-0001", upsert(n))
    old = await js.pull_subscribe_bind(FAST_DERIVER.durable, Stream.GATEWAY_IN)
    for msg in await old.fetch(3):
        await msg.ack_sync()  # the earlier deriver stored these three's observations
    await old.unsubscribe()
    async with deriving(nc):
        await until_derived(js)
    info = await js.consumer_info(Stream.GATEWAY_IN, FAST_DERIVER.durable)
    assert info.config.ack_policy == AckPolicy.ALL
    assert list(await observed_ids(js)) == ["MSG0003", "MSG0004", "MSG0005"]


async def test_past_its_window_it_holds_bodies_and_derives_them_in_order_once(
        nc: NATS, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog arrives far faster than stores are acked: at most `window` observations are
    out at once, the bodies behind them wait their turn, and an undecodable one among them
    does not jump the queue's order or stall it."""
    most, out = 0, 0
    submit_nowait = AckedPublisher.submit_nowait

    def counted(self: AckedPublisher, *args: Any, **kwargs: Any) -> asyncio.Future[PubAck]:
        nonlocal most, out
        stored = submit_nowait(self, *args, **kwargs)
        out += 1
        most = max(most, out)

        def back(_: asyncio.Future[PubAck]) -> None:
            nonlocal out
            out -= 1
        stored.add_done_callback(back)
        return stored

    monkeypatch.setattr(AckedPublisher, "submit_nowait", counted)
    narrow = msgspec.structs.replace(FAST_DERIVER, window=4)
    await ObservationDeriver(nc, narrow).prepare()  # before the backlog, so it is derived
    for n in range(300):
        await js.publish("gw.in.evolution.chip-0001",
                         b'{"event": "connection.update"' if n == 150 else upsert(n))
    async with deriving(nc, narrow) as deriver:
        await until_derived(js, timeout=15)
    assert most == 4  # the window filled, and held
    assert (deriver.derived, deriver.rejected) == (299, 1)
    assert list(await observed_ids(js)) == [f"MSG{n:04d}" for n in range(300) if n != 150]


async def test_a_trickle_of_bodies_is_derived_in_gathered_batches(
        nc: NATS, js: JetStreamContext) -> None:
    """Bodies that come one every few milliseconds are taken a lingerful at a time: a few
    pull requests for many bodies, each derived once and in order (a store coming back must
    not send the feed asking again before the linger is out)."""
    asked: list[dict[str, Any]] = []

    async def ask(msg: Any) -> None:
        asked.append(json.loads(msg.data))

    lingering = msgspec.structs.replace(FAST_DERIVER, linger=0.1)
    watch = await nc.subscribe(
        f"$JS.API.CONSUMER.MSG.NEXT.{Stream.GATEWAY_IN}.{lingering.durable}", cb=ask)
    async with deriving(nc, lingering):
        await asyncio.sleep(0.2)
        asked.clear()
        for n in range(100):
            await js.publish("gw.in.evolution.chip-0001", upsert(n))
            await asyncio.sleep(0.005)
        await until_derived(js)
    await watch.unsubscribe()
    assert list(await observed_ids(js)) == [f"MSG{n:04d}" for n in range(100)]
    assert len(asked) <= 25, asked  # asking on each store's ack would be one per body or so


@pytest.mark.own_nats_server
async def test_it_derives_on_after_the_server_crashes_and_comes_back(
        nats_server: EmbeddedNats | None, nc: NATS, js: JetStreamContext) -> None:
    """A crash takes the open pull requests and the observations in flight with it; on the
    same data the deriver asks again and derives every body once, in order."""
    await ObservationDeriver(nc, FAST_DERIVER).prepare()
    async with deriving(nc):
        for n in range(20):
            await js.publish("gw.in.evolution.chip-0001", upsert(n))
        await until_derived(js)
        for n in range(20, 40):  # stored; the deriver is in the middle of them when it dies
            await js.publish("gw.in.evolution.chip-0001", upsert(n))
        await crash_and_restart(nats_server, nc)
        for n in range(40, 60):
            await js.publish("gw.in.evolution.chip-0001", upsert(n))
        await until_derived(js, timeout=15)
    ids = await observed_ids(js)
    assert list(ids) == [f"MSG{n:04d}" for n in range(60)]
    assert set(ids.values()) == {1}


@pytest.mark.parametrize("stored_before_the_crash", [1, 3, 4])
async def test_a_body_cut_between_its_observations_is_derived_again_whole(
        ingress_only: Ingress, nc: NATS, js: JetStreamContext,
        stored_before_the_crash: int) -> None:
    """A Cloud API body gives several observations; a holder that crashed after storing some
    of them left `Julia-Raw-Part` n/of on the newest, and the next one derives the rest."""
    await ObservationDeriver(nc, FAST_DERIVER).prepare()
    body = json.loads((FIXTURES / "cloud_api_statuses.json").read_bytes())
    now = str(int(ingress_only.clock.now().timestamp()))
    for status in body["entry"][0]["changes"][0]["value"]["statuses"]:
        status["timestamp"] = now
    status_code, answer = await ingress_only.cloud_api(json.dumps(body).encode())
    assert status_code == 200
    raw = await js.get_msg(Stream.GATEWAY_IN, int(str(answer["seq"])))
    facts = derive(raw.subject, raw.data, ingress_only.clock.now())
    assert len(facts) == 4
    publisher = AckedPublisher(nc)  # what the crashed holder stored, as it stored it
    await publisher.open()
    raw_id = (raw.headers or {})["Nats-Msg-Id"]
    for n in range(stored_before_the_crash):
        await publisher.publish(*observation_message(
            facts[n], msg_id=raw_id + (":obs" if n == 0 else f":obs:{n}"), raw_seq=raw.seq,
            part=(n + 1, 4)))
    async with deriving(nc):
        await until_derived(js)
    stored_facts = [decode_observation((await js.get_msg(Stream.GATEWAY_OBS, seq)).data)
                    for seq in range(1, await stored(js, Stream.GATEWAY_OBS) + 1)]
    assert stored_facts == list(facts)  # each once, in the body's order
