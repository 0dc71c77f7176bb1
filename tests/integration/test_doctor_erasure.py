"""`ops.cmd.doctor.erase` with a balancer and the desk on real NATS: the doctor's key goes,
the balancer drops their backlog, clear copies are found in any phone form and deleted, the
opt-out stays, and asking again finds nothing left."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.model.decide import ERASED
from julia_chips.contract import operations as ops
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import OpsSubject, Stream
from julia_chips.jetstream.dead_letters import send_to_dead_letters
from tests.integration.balancer_harness import (
    read_stream,
    route_events,
    running_balancer,
    seed_chip,
)
from tests.integration.ops_desk import ask, running_desk

PHONE, OTHER = "+5511987654321", "+5521988887777"
OLD_FORM_JID = "551187654321@s.whatsapp.net"  # the same mobile without its ninth digit


async def _erase(nc: NATS, **who: str) -> ops.DoctorErasedReport:
    return await ask(nc, OpsSubject.DOCTOR_ERASE, who, ops.DoctorErasedReport, timeout=30)


async def test_erasing_a_doctor_by_id_shreds_the_backlog_and_deletes_clear_copies(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 1)
    await js.publish("gw.in.evolution.chip-a", f'{{"remoteJid":"{OLD_FORM_JID}"}}'.encode())
    await js.publish("gw.in.evolution.chip-a", f'{{"remoteJid":"{OTHER[1:]}"}}'.encode())
    async with running_balancer(nc) as runner, running_desk(nc):
        client = RouteClient(nc)
        await client.send("d0", OTHER, "first", "reply")
        assert (await client.send("d1", PHONE, "o plantão de sábado", "reply")).status == "queued"
        await send_to_dead_letters(js, "route", "send", b'{"text":"o plantao de sabado"}',
                                   "invalid SendRequest", "route.cmd.send")
        report = await _erase(nc, doctor_id="d1")
        assert report.ok and report.doctor_ids == ["d1"]
        assert (report.keys_deleted, report.balancer_forgot) == (1, 1)
        assert report.deleted == {"ROUTE_EVENTS": 0, "GATEWAY_IN": 1, "GATEWAY_OBS": 0,
                                  "DEAD_LETTER": 0}  # the letter's text is not the doctor's
        assert runner.leader is not None and not runner.leader.state.backlog
        again = await _erase(nc, doctor_id="d1")
        assert (again.keys_deleted, sum(again.deleted.values())) == (0, 0)
    events = await route_events(js)
    assert any(isinstance(e, rt.DoctorErased) and e.doctor_id == "d1" for e in events)
    assert any(isinstance(e, rt.RequestCancelled) and e.reason == ERASED for e in events)
    raw = b"".join(await read_stream(js, Stream.GATEWAY_IN))
    assert OTHER[1:].encode() in raw and b"87654321" not in raw


async def test_erasing_by_phone_keeps_the_phone_opted_out_through_a_rebuild(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 5)
    async with running_balancer(nc), running_desk(nc):
        client = RouteClient(nc)
        assert (await client.send("d0", PHONE, "first", "reply")).status == "dispatched"
        reply = await client.request(rt.InboundMessage(command_id="in-1", doctor_phone=PHONE,
                                                       text="PARAR"))
        assert reply.status == "opted_out"
        report = await _erase(nc, phone="551187654321")  # the old form names the same phone
        assert report.doctor_ids == ["d0"] and report.balancer_forgot == 1
        refused = await client.send("d9", PHONE, "again", "reply")
        assert (refused.ok, refused.reason) == (False, "opted_out")
        bad = await ask(nc, OpsSubject.DOCTOR_ERASE, {}, ops.DoctorErasedReport)
        assert not bad.ok and "exactly one of doctor_id or phone" in (bad.error or "")
    async with running_balancer(nc):  # rebuilt from the streams
        refused = await RouteClient(nc).send("d0", PHONE, "again", "reply")
        assert (refused.ok, refused.reason) == (False, "opted_out")
