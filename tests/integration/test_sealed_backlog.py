"""The backlog in ROUTE_EVENTS holds a doctor's phone and text only sealed under the
doctor's key: a new leader opens and serves it; once the key is gone the entry is
cancelled as erased and the balancer goes on."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.model.decide import ERASED
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from julia_chips.privacy.doctor_keys import DoctorKeys
from tests.fakes import FakeSender
from tests.integration.balancer_harness import (
    read_stream,
    route_events,
    running_balancer,
    seed_chip,
    wait_until,
)

PHONE = "+5511987654321"


async def test_a_sealed_backlog_is_served_by_the_next_leader(nc: NATS, js: JetStreamContext
                                                             ) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 1)
    sender = FakeSender()
    async with running_balancer(nc, sender=sender):
        client = RouteClient(nc)
        assert (await client.send("d0", PHONE, "first", "reply")).status == "dispatched"
        assert (await client.send("d1", PHONE, "plantão sábado", "reply")).status == "queued"
    stored = b"".join(await read_stream(js, Stream.ROUTE_EVENTS))
    assert PHONE[1:].encode() not in stored and "plantão".encode() not in stored
    [queued] = [e for e in await route_events(js) if isinstance(e, rt.RequestQueued)]
    assert queued.sealed is not None and queued.phone_key is not None
    async with running_balancer(nc, sender=sender):
        await seed_chip(js, "b", Status.ACTIVE, 5)

        async def served() -> bool:
            return len(sender.sent) == 2
        await wait_until(served)
    assert sender.sent[1][1:] == (PHONE, "plantão sábado")


async def test_an_entry_whose_key_is_gone_is_cancelled_and_routing_goes_on(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 1)
    sender = FakeSender()
    async with running_balancer(nc, sender=sender):
        client = RouteClient(nc)
        await client.send("d0", PHONE, "first", "reply")
        assert (await client.send("d1", PHONE, "waiting", "reply")).status == "queued"
    assert await DoctorKeys(js).erase("d1")
    async with running_balancer(nc, sender=sender) as runner:
        await seed_chip(js, "b", Status.ACTIVE, 5)

        async def cancelled() -> bool:
            return any(isinstance(e, rt.RequestCancelled) and e.reason == ERASED
                       for e in await route_events(js))
        await wait_until(cancelled)
        assert runner.leader is not None and not runner.leader.state.backlog
        assert (await RouteClient(nc).send("d2", PHONE, "next", "reply")).status == "dispatched"
    assert [t for _, _, t in sender.sent] == ["first", "next"]
