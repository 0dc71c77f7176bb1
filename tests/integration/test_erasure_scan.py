"""The erasure, through the running parts (sandbox Evolution over HTTP, the webhook edge, the
deriver, doctor feedback, the balancer, the read models in PostgreSQL, the desk): a doctor is
written to, replies, opts out and has a command dead-lettered; once erased, no message of any
stream (KV buckets' included) and no text, JSON or bytes column of any table holds their
phone in any form or their texts. The opt-out still holds, through a rebuild too."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.contract import operations as ops
from julia_chips.contract import route as rt
from julia_chips.contract.subjects import OpsSubject
from julia_chips.db.migrate import migrate_url
from julia_chips.operations.desk import OperationsDesk
from julia_chips.projections.service import Projections
from julia_chips.sandbox.world import Sandbox
from tests.integration.balancer_harness import SETTINGS, route_events, running_balancer, wait_until
from tests.integration.ingress_fixtures import Ingress, ingress, ingress_only, stamped
from tests.integration.ops_desk import ask
from tests.integration.test_doctor_feedback import (
    CLOCK,
    PHONE_SECRET,
    eight_digits,
    fleet_on_sandbox,
    sandbox,
)
from tests.integration.test_projections_lifecycles import caught_up

__all__ = ["ingress", "ingress_only", "sandbox"]  # the fixtures, re-exported for pytest
SENT = "Dra., consegue cobrir o plantão de sábado às 7h?"
REPLIED = "Posso sim, mas só depois das 19h de sexta"


def _inbound(phone: str, message_id: str, text: str, clock: object) -> bytes:
    body = {"event": "messages.upsert", "instance": "inst-a", "data": {
        "key": {"remoteJid": f"{eight_digits(phone)}@s.whatsapp.net", "fromMe": False,
                "id": message_id},
        "message": {"conversation": text}, "messageTimestamp": 1732700000}}
    return stamped(msgspec.json.encode(body), clock)  # type: ignore[arg-type]


def _traces(phone: str) -> list[bytes]:
    forms = {phone, phone[1:], eight_digits(phone)}  # a JID's digits are one of these
    texts = {t for t in (SENT, REPLIED, "plantao de sabado")}
    return [*(f.encode() for f in forms), *(t.encode() for t in texts),
            *(msgspec.json.encode(t)[1:-1] for t in texts)]


async def _stream_leftovers(js: JetStreamContext, traces: list[bytes]) -> list[str]:
    """Every message of every stream, body and headers, that holds a trace."""
    found = []
    for info in await js.streams_info():
        name = info.config.name
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                m = await js.get_msg(name, seq)
            except Exception:  # deleted, or a gap
                continue
            stored = (m.data or b"") + repr(m.headers or {}).encode()
            found += [f"{name}#{seq} ({m.subject})" for t in traces if t in stored]
    return found


async def _table_leftovers(database_url: str, traces: list[bytes]) -> list[str]:
    """Every text, JSON or bytes column of every table that holds a trace."""
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb', 'bytea', 'ARRAY')")
        found = []
        for table, column in columns:
            for (value,) in await conn.fetch(f'SELECT "{column}"::text FROM "{table}"'):
                found += [f"{table}.{column}" for t in traces if value and t in value.encode()]
        return found
    finally:
        await conn.close()


async def test_nothing_of_an_erased_doctor_is_left_in_any_stream_or_table(
        nc: NATS, js: JetStreamContext, sandbox: Sandbox, ingress: Ingress,
        database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url)
    projections.start()
    phone = sandbox.doctors.doctors[0].phone
    desk = OperationsDesk(nc, CLOCK, phone_secret=PHONE_SECRET)
    desk_task = asyncio.create_task(desk.run())
    try:
        async with fleet_on_sandbox(nc, js, sandbox, ingress) as route:
            assert (await route.send("dr-x", phone, SENT, "reply")).status == "dispatched"
            assert (await ingress.evolution(_inbound(phone, "3A5FREPLY", REPLIED,
                                                     ingress.clock)))[0] == 200

            async def replied() -> bool:
                return any(isinstance(e, rt.DoctorReplied) for e in await route_events(js))
            await wait_until(replied)
            assert (await ingress.evolution(_inbound(phone, "3A5FSTOP", "PARAR",
                                                     ingress.clock)))[0] == 200

            async def opted_out() -> bool:
                return any(isinstance(e, rt.DoctorOptedOut) for e in await route_events(js))
            await wait_until(opted_out)
            bad = msgspec.json.encode({"command_id": "bad-1", "doctor_id": "dr-x",
                                       "doctor_phone": phone, "text": "plantao de sabado"})
            assert (await route.send_raw("send", bad)).reason == "invalid"  # no `kind`
            await asyncio.sleep(0.5)  # the sandbox doctor's read receipts
            await caught_up(js, database_url)
            traces = _traces(phone)
            before = {found.split("#")[0] for found in await _stream_leftovers(js, traces)}
            assert before == {"GATEWAY_IN", "GATEWAY_OBS", "DEAD_LETTER"}  # the scan sees them

            report = await ask(nc, OpsSubject.DOCTOR_ERASE, {"phone": phone},
                               ops.DoctorErasedReport, timeout=60)
            assert report.ok and report.doctor_ids == ["dr-x"], report
            assert report.balancer_forgot == 1 and report.deleted["GATEWAY_IN"] >= 2
            await caught_up(js, database_url)
            assert await _stream_leftovers(js, traces) == []
            assert await _table_leftovers(database_url, traces) == []
            refused = await route.send("dr-x", phone, "Ainda aí?", "reply")
            assert (refused.ok, refused.reason) == (False, "opted_out")
        async with running_balancer(nc, CLOCK, msgspec.structs.replace(
                SETTINGS, phone_secret=PHONE_SECRET)):  # rebuilt from what is left
            refused = await RouteClient(nc).send("dr-y", eight_digits(phone), "Oi", "reply")
            assert (refused.ok, refused.reason) == (False, "opted_out")
    finally:
        desk.stop()
        await desk_task
        await projections.stop()
