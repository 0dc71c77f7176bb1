"""Routing through real NATS: requests in, events and ledger out, answers back."""

from __future__ import annotations

import asyncio
from collections import Counter

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from tests.fakes import FakeSender
from tests.integration.balancer_harness import (
    ledger,
    read_stream,
    route_events,
    running_balancer,
    seed_chip,
    wait_until,
)
from tests.unit.balancer_builders import chip_history

PHONE = "+5511987654321"


async def test_requests_are_routed_sticky_and_recorded(nc: NATS, js: JetStreamContext) -> None:
    for chip_id, cap in (("a", 100), ("b", 100), ("c", 100)):
        await seed_chip(js, chip_id, Status.ACTIVE, cap)
    sender = FakeSender()
    async with running_balancer(nc, sender=sender):
        client = RouteClient(nc)
        first = await asyncio.gather(*(client.send(f"doc{n}", PHONE, f"oi {n}", "reply", True)
                                       for n in range(30)))
        again = await asyncio.gather(*(client.send(f"doc{n}", PHONE, f"de novo {n}", "reply")
                                       for n in range(30)))
    assert all(r.ok and r.status == "dispatched" for r in first + again)
    assert [r.chip_id for r in first] == [r.chip_id for r in again]  # sticky
    assert set(Counter(r.chip_id for r in first).values()) == {10}  # most capacity left first
    assigned = Counter(e.doctor_id for e in await route_events(js)
                       if isinstance(e, rt.ConversationAssigned))
    assert len(assigned) == 30 and set(assigned.values()) == {1}
    kinds = Counter(type(e).__name__ for e in await ledger(js))
    assert kinds == {"SendAttempted": 60, "SendDispatched": 60}
    assert len(sender.sent) == 60


async def test_bad_requests_get_a_clear_refusal_and_nothing_is_stored(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 100)
    base = b'"command_id":"c1","doctor_phone":"+5511987654321"'
    bad = {
        ("send", b'{' + base + b',"doctor_id":"dr.x","text":"oi","kind":"reply"}'): "doctor_id",
        ("send", b'{' + base + b',"doctor_id":"d1","text":"","kind":"reply"}'): "text",
        ("send", b'{' + base + b',"doctor_id":"d1","text":"oi","kind":"spam"}'): "kind",
        ("send", b"{not json"): "JSON",
        ("optout", b'{"command_id":"c2","doctor_id":"d1"}'): "source",
        ("shout", b'{"command_id":"c3","doctor_id":"d1"}'): "route.cmd.shout",
    }
    async with running_balancer(nc):
        client = RouteClient(nc)
        for (verb, body), field in bad.items():
            reply = await client.send_raw(verb, body)
            assert not reply.ok and reply.reason == "invalid" and field in (reply.error or "")
        ok = await client.send("d1", PHONE, "ainda vivo", "reply")
        assert ok.ok  # the balancer kept running
    assert [type(e) for e in await route_events(js)] == [rt.ConversationAssigned]
    assert len(await read_stream(js, Stream.DEAD_LETTER)) == len(bad)


async def test_opt_out_keyword_stops_everything_and_a_duplicate_is_not_resent(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 100)
    sender = FakeSender()
    async with running_balancer(nc, sender=sender):
        client = RouteClient(nc)
        one = await client.send("d1", PHONE, "plantão sábado?", "reply", command_id="same")
        two = await client.send("d1", PHONE, "plantão sábado?", "reply", command_id="same")
        assert (one.status, two.status, one.chip_id) == ("dispatched", "dispatched", two.chip_id)
        reply = await client.request(rt.InboundMessage(command_id="in", doctor_id="d1",
                                                       text="Descadastrár"))
        assert reply.status == "opted_out"
        refused = await client.send("d1", PHONE, "e agora?", "reply")
        assert not refused.ok and refused.reason == "opted_out"
        assert (await client.opt_in("d1", "crm")).ok
        assert (await client.send("d1", PHONE, "bem-vindo de volta", "reply")).ok
    assert [t for _, _, t in sender.sent] == ["plantão sábado?", "bem-vindo de volta"]


async def test_the_backlog_is_durable_and_served_in_order_when_capacity_frees(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 1)
    sender = FakeSender()
    async with running_balancer(nc, sender=sender) as runner:
        client = RouteClient(nc)
        assert (await client.send("d0", PHONE, "first", "reply")).status == "dispatched"
        queued = [await client.send(f"d{n}", PHONE, f"waiting {n}", "reply") for n in (1, 2)]
        assert [r.status for r in queued] == ["queued", "queued"]
        assert "capacity" in (queued[0].reason or "")
        assert runner.leader is not None and len(runner.leader.state.backlog) == 2
    # A new leader finds the backlog in the stream; a new active chip frees capacity.
    async with running_balancer(nc, sender=sender) as runner:
        assert runner.leader is not None and len(runner.leader.state.backlog) == 2
        await seed_chip(js, "b", Status.ACTIVE, 5)

        async def served() -> bool:
            return len(sender.sent) == 3
        await wait_until(served)
    assert [t for _, _, t in sender.sent] == ["first", "waiting 1", "waiting 2"]
    kinds = Counter(type(e) for e in await ledger(js))
    assert kinds[msg.SendAttempted] == 3 and kinds[msg.SendDispatched] == 3
    assert chip_history  # seeded histories are the same the unit tests fold
