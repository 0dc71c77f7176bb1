"""The WhatsApp Cloud API's webhooks, end to end: the sandbox's Cloud API posts signed
statuses and doctors' replies over HTTP for the numbers registered on it; the edge checks
the signature and the timestamps, the deriver stores observations, the feedback part files
them (`route.cmd.inbound`, the ledger) and the health monitor counts them into the chip's
warm day. Chips are found by their number, not by an instance name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.dispatch import EvolutionSender
from julia_chips.chip.client import ChipClient
from julia_chips.clock import SystemClock
from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from julia_chips.db.migrate import migrate_url
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.wire import InstanceSpec, WebhookTarget
from julia_chips.ingest.feedback import DoctorFeedback
from julia_chips.projections.service import Projections
from julia_chips.sandbox.cloud_api import SandboxNumber
from julia_chips.sandbox.world import Sandbox, start_sandbox
from tests.conftest import new_chip_id
from tests.integration.balancer_harness import (
    SETTINGS,
    ledger,
    route_events,
    running_balancer,
    seed_chip,
    wait_until,
)
from tests.integration.dead_letter_reader import stored_dead_letters
from tests.integration.health_rig import monitoring
from tests.integration.ingress_fixtures import (
    CLOUD_API_SECRET,
    CLOUD_API_VERIFY_TOKEN,
    EVOLUTION_SECRET,
    Ingress,
    ingress,
    ingress_only,
    stored,
)
from tests.integration.test_doctor_feedback import CLOCK as BALANCER_CLOCK
from tests.integration.test_doctor_feedback import FAST, PHONE_SECRET, eight_digits
from tests.integration.test_projections_lifecycles import caught_up
from tests.integration.warm_fleet import events_of
from tests.integration.workers import running_worker

__all__ = ["ingress", "ingress_only"]  # the fixtures, re-exported for pytest
FIXTURES = Path(__file__).parent.parent / "fixtures"
CLOCK = SystemClock()  # the sandbox's and the edge's: Meta's timestamps are checked against it


@pytest.fixture
async def sandbox(ingress_only: Ingress) -> AsyncIterator[Sandbox]:
    world = await start_sandbox(doctors=10, hosts=0, pace=0.01, link_delay=0.02, seed=11)
    assert world.cloud_api is not None
    world.cloud_api.app_secret = CLOUD_API_SECRET  # as set in the Meta app
    world.cloud_api.webhook_url = ingress_only.base_url + "/webhooks/cloud-api"
    yield world
    await world.close()


def chip_number(n: int) -> str:
    return f"+551197000{n:04d}"


@asynccontextmanager
async def cloud_api_instances(sandbox: Sandbox, ingress: Ingress, chips: dict[str, str]
                              ) -> AsyncIterator[EvolutionClient]:
    """Each chip's number registered on the Cloud API, sent through by a WHATSAPP-BUSINESS
    instance (as the Cloud API registrar links it): receipts and replies come from Meta."""
    assert sandbox.cloud_api is not None
    async with aiohttp.ClientSession() as http:
        client = EvolutionClient(http, sandbox.evolution_url, sandbox.evolution_api_key)
        for n, (chip_id, phone) in enumerate(chips.items()):
            graph_id = str(10**14 + 500 + n)
            sandbox.cloud_api.numbers[graph_id] = SandboxNumber(
                id=graph_id, phone=phone, verified=True, registered=True)
            target = WebhookTarget(url=ingress.base_url + "/webhooks/evolution",
                                   master_secret=EVOLUTION_SECRET)
            await client.create_instance(InstanceSpec(
                name=f"inst-{chip_id}", webhook=target, integration="WHATSAPP-BUSINESS",
                number=graph_id, token="graph-token"))
            await client.connect(f"inst-{chip_id}")

        async def linked() -> bool:
            return all(i.state == "open" for i in sandbox.evolution.instances.values())
        await wait_until(linked)
        yield client


@asynccontextmanager
async def fleet_on_cloud_api(nc: NATS, js: JetStreamContext, sandbox: Sandbox,
                             ingress: Ingress) -> AsyncIterator[RouteClient]:
    """Chips a and b active on Cloud API numbers; the balancer sending; feedback filing."""
    chips = {"a": chip_number(1), "b": chip_number(2)}
    for chip_id, phone in chips.items():
        await seed_chip(js, chip_id, Status.ACTIVE, 100, phone_number=phone)
    async with cloud_api_instances(sandbox, ingress, chips) as client:
        settings = msgspec.structs.replace(SETTINGS, phone_secret=PHONE_SECRET)
        stop = asyncio.Event()
        feedback = asyncio.create_task(DoctorFeedback(nc, BALANCER_CLOCK, FAST).run(stop))
        try:
            async with running_balancer(nc, BALANCER_CLOCK, settings=settings,
                                        sender=EvolutionSender(client)):
                yield RouteClient(nc)
        finally:
            stop.set()
            await feedback


async def test_a_doctors_parar_on_the_cloud_api_stops_every_later_send(
        nc: NATS, js: JetStreamContext, sandbox: Sandbox, ingress: Ingress) -> None:
    doctor = sandbox.doctors.doctors[0]
    sandbox.doctors.opt_out(doctor.phone)  # answers PARAR to the first message it reads
    async with fleet_on_cloud_api(nc, js, sandbox, ingress) as route:
        first = await route.send("dr-1", doctor.phone, "Plantão sábado?", "reply", True)
        assert first.status == "dispatched"

        async def opted_out() -> bool:
            return any(isinstance(e, rt.DoctorOptedOut) and e.phone_key
                       for e in await route_events(js))
        await wait_until(opted_out)
        # Meta wrote the doctor without the ninth digit; the phone is out in both forms.
        for doctor_id, phone in (("dr-1", doctor.phone), ("dr-2", doctor.phone),
                                 ("dr-3", eight_digits(doctor.phone))):
            refused = await route.send(doctor_id, phone, "Ainda aí?", "reply", True)
            assert (refused.ok, refused.reason) == (False, "opted_out"), doctor_id

        async def replied() -> bool:
            return any(isinstance(e, msg.Replied) for e in await ledger(js))
        await wait_until(replied)
    events = await ledger(js)
    assert [e.doctor_id for e in events if isinstance(e, msg.SendAttempted)] == ["dr-1"]
    (dispatched,) = [e for e in events if isinstance(e, msg.SendDispatched)]
    assert dispatched.message_id.startswith("wamid.")  # Meta's id, as the statuses name it
    (reply,) = [e for e in events if isinstance(e, msg.Replied)]
    assert (reply.attempt_id, reply.chip_id, reply.message_id) == (
        dispatched.attempt_id, dispatched.chip_id, dispatched.message_id)


async def test_statuses_and_replies_land_in_the_ledger_on_their_attempts(
        nc: NATS, js: JetStreamContext, sandbox: Sandbox, ingress: Ingress,
        database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url)
    projections.start()
    doctors = sandbox.doctors.doctors
    try:
        async with fleet_on_cloud_api(nc, js, sandbox, ingress) as route:
            for n, doctor in enumerate(doctors):
                reply = await route.send(f"dr-{n}", doctor.phone, "Oi, doutor(a)", "reply")
                assert reply.status == "dispatched"

            async def all_delivered() -> bool:
                return sum(isinstance(e, msg.Delivered) for e in await ledger(js)) == len(doctors)
            await wait_until(all_delivered)
            await asyncio.sleep(0.5)  # the reads and replies the doctors will do (pace 0.01 s)
        await caught_up(js, database_url)
        events = await ledger(js)
        dispatched = {e.message_id: e for e in events if isinstance(e, msg.SendDispatched)}
        receipts = [e for e in events if isinstance(e, msg.Delivered | msg.Read | msg.Replied)]
        assert all(dispatched[e.message_id or ""].attempt_id == e.attempt_id for e in receipts)
        assert len({e.event_id for e in receipts}) == len(receipts)  # each filed once
        reads = [e for e in receipts if isinstance(e, msg.Read)]
        replies = [e for e in receipts if isinstance(e, msg.Replied)]
        assert reads and replies
        # The read model counts what the ledger holds (the sandbox's doctors decide how many).
        conn = await asyncpg.connect(database_url)
        try:
            counted = await conn.fetchrow(
                "SELECT count(delivered_at) AS d, count(read_at) AS r, count(replied_at) AS p "
                "FROM message_attempts")
        finally:
            await conn.close()
        assert (counted["d"], counted["r"], counted["p"]) == (len(doctors), len(reads),
                                                              len(replies))
    finally:
        await projections.stop()


async def test_receipts_and_replies_count_in_the_chips_warm_day(
        nc: NATS, js: JetStreamContext, sandbox: Sandbox, ingress: Ingress,
        database_url: str) -> None:
    """Sent, delivered, read and replied reach `TrafficObserved`, the closed day's
    `WarmDayCompleted` and `chip_warmer_metrics`, for a chip named only by its number."""
    await migrate_url(database_url)
    chip = new_chip_id()
    chips = ChipClient(nc)
    projections = Projections(nc, database_url)
    projections.start()
    doctors = sandbox.doctors.doctors
    try:
        async with running_worker(nc, CLOCK), monitoring(nc, CLOCK), \
                cloud_api_instances(sandbox, ingress, {chip: chip_number(7)}) as client:
            for command in (cmd.Provision(command_id="p"), cmd.StartActivation(command_id="s"),
                            cmd.CompleteActivation(command_id="c", instance=f"inst-{chip}",
                                                   host="vps-1", phone_number=chip_number(7))):
                assert (await chips.send(chip, command)).ok
            for doctor in doctors:
                await client.send_text(f"inst-{chip}", doctor.phone, "Oi, doutor(a)")

            async def counted() -> bool:
                traffic = [e for e in await events_of(js, chip)
                           if isinstance(e, ev.TrafficObserved)]
                return (sum(e.sent for e in traffic) == len(doctors)
                        and sum(e.delivered for e in traffic) == len(doctors)
                        and sum(e.replied for e in traffic) > 0)
            await wait_until(counted)
            await asyncio.sleep(0.5)  # the last reads and replies
            assert (await chips.send(chip, cmd.CloseWarmDay(command_id="close-1",
                                                            day_number=1))).ok
        (day,) = [e for e in await events_of(js, chip) if isinstance(e, ev.WarmDayCompleted)]
        assert (day.messages_sent, day.delivered) == (len(doctors), len(doctors))
        assert 0 < day.read <= len(doctors) and 0 < day.replied <= day.messages_received
        await caught_up(js, database_url)
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow("SELECT * FROM chip_warmer_metrics WHERE chip_id = $1",
                                      chip)
        finally:
            await conn.close()
        assert row is not None
        assert (row["delivered"], row["read"], row["replied"]) == (day.delivered, day.read,
                                                                    day.replied)
    finally:
        await chips.close()
        await projections.stop()


# --- the edge ------------------------------------------------------------------------------


def statuses_body(timestamp: int) -> bytes:
    body = json.loads((FIXTURES / "cloud_api_statuses.json").read_bytes())
    for status in body["entry"][0]["changes"][0]["value"]["statuses"]:
        status["timestamp"] = str(timestamp)
    return json.dumps(body).encode()


async def test_only_a_body_signed_with_the_app_secret_is_stored(
        js: JetStreamContext, ingress_only: Ingress) -> None:
    body = statuses_body(int(CLOCK.now().timestamp()))
    before = await stored(js, Stream.GATEWAY_IN)
    for secret in (None, "not-the-app-secret"):
        status, answer = await ingress_only.cloud_api(body, secret)
        assert status == 401 and "X-Hub-Signature-256" in str(answer["error"])
    tampered = body.replace(b'"read"', b'"sent"')
    async with ingress_only.session.post(
            ingress_only.base_url + "/webhooks/cloud-api", data=tampered,
            headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}) as resp:
        assert resp.status == 401
    assert await stored(js, Stream.GATEWAY_IN) == before
    assert (await ingress_only.cloud_api(body))[0] == 200
    assert (await ingress_only.cloud_api(body))[0] == 200  # Meta's retry: stored once
    assert await stored(js, Stream.GATEWAY_IN) == before + 1
    last = (await js.stream_info(Stream.GATEWAY_IN)).state.last_seq
    assert (await js.get_msg(Stream.GATEWAY_IN, last)).subject == \
        "gw.in.cloud_api.100000000000002"


@pytest.mark.parametrize("offset", [timedelta(hours=25), timedelta(minutes=-6),
                                    timedelta(days=-400 * 365)])
async def test_a_timestamp_outside_the_window_is_refused_naming_it(
        js: JetStreamContext, ingress_only: Ingress, offset: timedelta) -> None:
    """A day old (past Meta's retries we take), ahead of our clock, or before WhatsApp."""
    before = await stored(js, Stream.GATEWAY_IN)
    stamp = max(int((CLOCK.now() - offset).timestamp()), 1)
    status, answer = await ingress_only.cloud_api(statuses_body(stamp))
    assert status == 400
    assert "$.entry[0].changes[0].value.statuses[0].timestamp" in str(answer["error"])
    assert await stored(js, Stream.GATEWAY_IN) == before


async def test_meta_subscribes_with_our_verify_token_only(ingress_only: Ingress) -> None:
    url = ingress_only.base_url + "/webhooks/cloud-api"
    query = {"hub.mode": "subscribe", "hub.verify_token": CLOUD_API_VERIFY_TOKEN,
             "hub.challenge": "1158201444"}
    async with ingress_only.session.get(url, params=query) as resp:
        assert (resp.status, await resp.text()) == (200, "1158201444")
    for wrong in ({"hub.verify_token": "guess"}, {"hub.mode": "unsubscribe"}):
        async with ingress_only.session.get(url, params=query | wrong) as resp:
            assert resp.status == 403


async def test_a_number_no_chip_has_is_counted_and_dropped(
        nc: NATS, js: JetStreamContext, ingress: Ingress) -> None:
    """The monitor dead-letters (and counts) the statuses of a number no `Activated` names
    and goes on: a chip's signals after them are still folded."""
    await seed_chip(js, "known", Status.ACTIVE, 100, phone_number="+15550783881")
    strange = statuses_body(int(CLOCK.now().timestamp())).replace(b"15550783881",
                                                                   b"15550000000")
    async with monitoring(nc, CLOCK) as monitor:
        assert (await ingress.cloud_api(strange))[0] == 200
        assert (await ingress.cloud_api(statuses_body(int(CLOCK.now().timestamp()))))[0] == 200

        async def both_seen() -> bool:
            return monitor.rejected == 4 and monitor.folded == 4
        await wait_until(both_seen)
    letters = await stored_dead_letters(js, "dlq.obs.100000000000002", quiet=0.3)
    assert len(letters) == 4 and all("no Activated" in reason for _, reason in letters)
