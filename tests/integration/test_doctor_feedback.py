"""Doctors' replies and receipts, through the running parts: the sandbox's Evolution posts
webhooks over HTTP to the ingress, the deriver stores observations, the feedback part files
them (`route.cmd.inbound`, the ledger), the balancer and the read models count them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.dispatch import EvolutionSender
from julia_chips.clock import FixedClock
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.db.migrate import migrate_url
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.wire import InstanceSpec, WebhookTarget
from julia_chips.ingest.feedback import DoctorFeedback, FeedbackSettings
from julia_chips.projections.doctors import doctor_view
from julia_chips.projections.service import Projections
from julia_chips.sandbox.world import Sandbox, start_sandbox
from tests.integration.balancer_harness import (
    SETTINGS,
    ledger,
    route_events,
    running_balancer,
    seed_chip,
    wait_until,
)
from tests.integration.ingress_fixtures import (
    EVOLUTION_SECRET,
    Ingress,
    ingress,
    ingress_only,
    stamped,
)
from tests.integration.test_projections_lifecycles import caught_up
from tests.unit.balancer_builders import NOW

__all__ = ["ingress", "ingress_only"]  # the fixtures, re-exported for pytest
PHONE_SECRET = b"feedback-test-secret"
FAST = FeedbackSettings(retry_delay=0.1, tend=0.1)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    world = await start_sandbox(doctors=10, hosts=0, pace=0.01, link_delay=0.02, seed=11)
    yield world
    await world.close()


# The balancer's, the feedback part's and the read's time: the sends are dated by it, so the
# doctor view judges them on the same clock (not the wall clock, which passes any fixed date).
CLOCK = FixedClock(NOW)


@asynccontextmanager
async def fleet_on_sandbox(nc: NATS, js: JetStreamContext, sandbox: Sandbox,
                           ingress: Ingress) -> AsyncIterator[RouteClient]:
    """Chips a and b active, their Evolution instances linked in the sandbox and posting to
    the ingress; the balancer sending through Evolution; the feedback part filing."""
    async with aiohttp.ClientSession() as http:
        client = EvolutionClient(http, sandbox.evolution_url, sandbox.evolution_api_key)
        for n, chip_id in enumerate(("a", "b")):
            target = WebhookTarget(url=ingress.base_url + "/webhooks/evolution",
                                   master_secret=EVOLUTION_SECRET)
            await client.create_instance(InstanceSpec(name=f"inst-{chip_id}", webhook=target))
            await client.connect(f"inst-{chip_id}", number=f"+551130000000{n}")
            await seed_chip(js, chip_id, Status.ACTIVE, 100)

        async def linked() -> bool:
            return all(i.state == "open" for i in sandbox.evolution.instances.values())
        await wait_until(linked)
        settings = msgspec.structs.replace(SETTINGS, phone_secret=PHONE_SECRET)
        stop = asyncio.Event()
        feedback = asyncio.create_task(DoctorFeedback(nc, CLOCK, FAST).run(stop))
        try:
            async with running_balancer(nc, CLOCK, settings=settings,
                                        sender=EvolutionSender(client)):
                yield RouteClient(nc)
        finally:
            stop.set()
            await feedback


def eight_digits(phone: str) -> str:
    """The same mobile as WhatsApp often writes it: without the ninth digit."""
    return phone[1:5] + phone[6:]


async def test_parar_stops_every_message_to_that_phone(
        nc: NATS, js: JetStreamContext, sandbox: Sandbox, ingress: Ingress) -> None:
    doctor, stranger = sandbox.doctors.doctors[:2]
    sandbox.doctors.opt_out(doctor.phone)  # answers PARAR to the first message it reads
    async with fleet_on_sandbox(nc, js, sandbox, ingress) as route:
        first = await route.send("dr-1", doctor.phone, "Plantão sábado?", "reply", True)
        assert first.status == "dispatched"

        async def opted_out() -> bool:
            return any(isinstance(e, rt.DoctorOptedOut) and e.phone_key
                       for e in await route_events(js))
        await wait_until(opted_out)
        # A stranger's PARAR, written the old way, from a phone we never sent to.
        upsert = stamped(
            b'{"event":"messages.upsert","instance":"inst-b","data":{"key":{"remoteJid":"'
            + eight_digits(stranger.phone).encode() + b'@s.whatsapp.net","fromMe":false,'
            b'"id":"3A5FSTRANGER"},"message":{"conversation":"Parar."},'
            b'"messageTimestamp":1732700000}}', ingress.clock)
        assert (await ingress.evolution(upsert))[0] == 200
        assert (await ingress.evolution(upsert))[0] == 200  # a replayed webhook: one command

        async def both_out() -> bool:
            return sum(isinstance(e, rt.DoctorOptedOut) and e.phone_key is not None
                       for e in await route_events(js)) == 2
        await wait_until(both_out)
        for doctor_id, phone in (("dr-1", doctor.phone), ("dr-2", doctor.phone),
                                 ("dr-3", eight_digits(doctor.phone)),
                                 ("dr-4", stranger.phone), ("dr-5", eight_digits(stranger.phone))):
            refused = await route.send(doctor_id, phone, "Ainda aí?", "reply", True)
            assert (refused.ok, refused.reason) == (False, "opted_out"), doctor_id
    attempts = [e for e in await ledger(js) if isinstance(e, msg.SendAttempted)]
    assert [e.doctor_id for e in attempts] == ["dr-1"]  # nothing more left for those phones
    opt_outs = [e for e in await route_events(js) if isinstance(e, rt.DoctorOptedOut)]
    assert opt_outs[0].doctor_id == "dr-1" and len(opt_outs) == 2


async def test_receipts_reach_the_ledger_and_the_doctor_read_model(
        nc: NATS, js: JetStreamContext, sandbox: Sandbox, ingress: Ingress,
        database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url)
    projections.start()
    doctors = sandbox.doctors.doctors
    try:
        async with fleet_on_sandbox(nc, js, sandbox, ingress) as route:
            for n, doctor in enumerate(doctors):
                reply = await route.send(f"dr-{n}", doctor.phone, "Oi, doutor(a)", "reply")
                assert reply.status == "dispatched"

            async def all_delivered() -> bool:
                return sum(isinstance(e, msg.Delivered) for e in await ledger(js)) == len(doctors)
            await wait_until(all_delivered)
            await asyncio.sleep(0.3)  # the reads the doctors will do (pace 0.01 s)
        await caught_up(js, database_url)
        events = await ledger(js)
        dispatched = {e.message_id: e.attempt_id for e in events
                      if isinstance(e, msg.SendDispatched)}
        receipts = [e for e in events if isinstance(e, msg.Delivered | msg.Read)]
        assert all(dispatched[e.message_id] == e.attempt_id for e in receipts)
        reads = {e.attempt_id for e in receipts if isinstance(e, msg.Read)}
        assert reads
        conn = await asyncpg.connect(database_url)
        try:
            views = [await doctor_view(conn, f"dr-{n}", CLOCK.now())
                     for n in range(len(doctors))]
        finally:
            await conn.close()
        assert all(v is not None and v.messages.delivered == 1 for v in views)
        assert sum(v.messages.read for v in views if v is not None) == len(reads)
    finally:
        await projections.stop()
