"""Messages that are not our events, raw-published on `chip.evt.<A>` as anyone who reaches
NATS could: every reader of CHIP_EVENTS steps over them, logs and counts them, and goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from prometheus_client import REGISTRY

from julia_chips.app import start_http
from julia_chips.balancer.client import RouteClient
from julia_chips.chip.client import ChipClient
from julia_chips.config import Config
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.contract.codec import encode_event, event_headers
from julia_chips.contract.subjects import JuliaHeader, chip_events
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.jetstream.stored_chip_event import follow_chip_events
from julia_chips.projections.audit import read_row
from julia_chips.projections.service import Projections
from tests.conftest import new_chip_id
from tests.integration.activation_fixtures import activation_world, running_activator
from tests.integration.balancer_harness import running_balancer, seed_chip
from tests.integration.test_projections_lifecycles import caught_up
from tests.integration.workers import running_worker
from tests.unit.balancer_builders import chip_history

PHONE_B = "+5511900000002"
PHONE_FORGED = "+5511966666666"
NOW = datetime.now(UTC)  # only stored in events; nothing here compares it with a clock


def forged_event(chip_id: str, command_id: str = "forged") -> chip_ev.AnyChipEvent:
    """A well-formed event of `chip_id`, meant to be published on another chip's subject."""
    return chip_ev.Provisioned(event_id=f"{chip_id}:{command_id}:0", chip_id=chip_id,
                               command_id=command_id, occurred_at=NOW,
                               phone_number=PHONE_FORGED)


async def publish_foreign(js: JetStreamContext, chip_id: str, other_chip: str) -> int:
    """Four kinds of foreign message on `chip_id`'s subject; returns how many."""
    forged = forged_event(other_chip)
    foreign: list[tuple[bytes, dict[str, str] | None]] = [
        (b"\x00 not json at all", None),
        (b'{"ok": true, "events": [{"type": "Provisioned", "seq": 1}]}', None),  # a reply
        (b"[1, 2, 3]", {JuliaHeader.EVENT_TYPE: "TrafficObserved",  # claims an old version
                        JuliaHeader.EVENT_VERSION: "1"}),
        (encode_event(forged), event_headers(forged)),  # another chip's event
    ]
    for body, headers in foreign:
        await js.publish(chip_events(chip_id), body, headers=headers)
    return len(foreign)


def skipped(reader: str) -> float:
    return REGISTRY.get_sample_value("julia_foreign_chip_events_total",
                                     {"reader": reader}) or 0.0


async def test_a_chip_with_foreign_messages_recovers_and_every_reader_goes_on(
        nc: NATS, js: JetStreamContext, nats_url: str, database_url: str) -> None:
    client = ChipClient(nc)
    a, b = new_chip_id(), new_chip_id()
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    before = {r: skipped(r) for r in ("event_log", "http", "chip_feed",
                                      "projection julia_chips")}
    try:
        async with running_worker(nc):  # stopping snapshots A: recovery is snapshot + tail
            assert (await client.send(a, cmd.Provision(command_id="p"))).ok
            assert (await client.send(b, cmd.Provision(command_id="p",
                                                       phone_number=PHONE_B))).ok
        count = await publish_foreign(js, a, other_chip=b)
        async with running_worker(nc):
            recovered = await client.send(a, cmd.StartActivation(command_id="s"))
            again = await client.send(a, cmd.CompleteActivation(command_id="c", instance="i",
                                                                host="h"))
            other = await client.send(b, cmd.StartActivation(command_id="s"))
        await caught_up(js, database_url)
        conn = await asyncpg.connect(database_url)
        try:
            row_a, row_b = await read_row(conn, a), await read_row(conn, b)
        finally:
            await conn.close()
    finally:
        await projections.stop()
    assert (recovered.ok, again.ok, other.ok) == (True, True, True)
    assert again.state == "warming" and other.state == "activating"
    assert row_a is not None and row_a.status == "warming"  # later events still projected
    assert row_b is not None and row_b.phone_number == PHONE_B  # not the forged one
    assert row_b.status == "activating"
    history = await events_page(nc, nats_url, database_url, a)
    assert [e["type"] for e in history] == ["Provisioned", "ActivationStarted", "Activated"]
    assert {e["event"]["chip_id"] for e in history} == {a}
    folded: list[chip_ev.AnyChipEvent] = []
    feed = follow_chip_events(js, folded.append)
    await feed.start()
    await feed.stop()
    assert {e.chip_id for e in folded} == {a, b}
    assert "forged" not in {e.command_id for e in folded}
    after = {r: skipped(r) for r in before}
    assert after["event_log"] >= before["event_log"] + count
    assert all(after[r] >= before[r] + count for r in ("http", "chip_feed",
                                                       "projection julia_chips"))


async def events_page(nc: NATS, nats_url: str, database_url: str,
                      chip: str) -> list[dict[str, Any]]:
    """`GET /chips/<chip>/events`, which must answer 200 whatever the stream holds."""
    config = Config(nats_url=nats_url, database_url=database_url)
    runner, port = await start_http(create_app(config, nc=nc), 0)
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/chips/{chip}/events") as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = msgspec.json.decode(await resp.read())
    finally:
        await runner.cleanup()
    return list(body["items"])


async def test_the_balancer_rebuilds_past_foreign_messages_and_routes(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 100)
    for event in chip_history("b", Status.ACTIVE, 100):  # chip b, only on a's subject
        await js.publish(chip_events("a"), encode_event(event), headers=event_headers(event))
    await publish_foreign(js, "a", other_chip="c")
    before = skipped("balancer")
    async with running_balancer(nc) as runner:
        reply = await RouteClient(nc).send("d1", "+5511987654321", "oi", "reply")
        assert runner.leader is not None
        chips = set(runner.leader.state.fleet.chips)
    assert reply.ok and reply.chip_id == "a"
    assert chips == {"a"}
    assert skipped("balancer") > before


async def test_the_activator_starts_no_saga_for_a_provisioned_event_on_another_subject(
        nc: NATS) -> None:
    before = skipped("activator")
    async with activation_world(nc) as world, running_activator(world):
        [a] = await world.provision(1)
        ghost = new_chip_id()  # a chip nobody provisioned
        forged = forged_event(ghost)
        await nc.jetstream().publish(chip_events(a), encode_event(forged),
                                     headers=event_headers(forged))
        [later] = await world.provision(1)  # the activator reads chip events in order
        await world.until_saga(later, object)
        ghost_saga = await world.saga_events(ghost)
    assert ghost_saga == []
    assert skipped("activator") > before
