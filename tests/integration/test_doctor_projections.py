"""The doctor read models against the real balancer: sends, a refusal, opt-out and opt-in, a
ban with failover and quarantine, a backlog served, cancelled and still waiting. The rows
must say what the balancer itself believes, and a rebuild must write the very same rows."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.model.state import BalancerState
from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.db.migrate import migrate_url
from julia_chips.projections.catalog import PROJECTIONS
from julia_chips.projections.doctors import backlog_summary, doctor_view
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import Projections
from tests.fakes import FakeSender
from tests.integration.balancer_harness import running_balancer, seed_chip, wait_until
from tests.integration.test_projections_lifecycles import caught_up, checksums
from tests.integration.workers import running_worker
from tests.unit.balancer_builders import NOW

PHONE = "+5511987654321"
# Chip ids are UUIDs (the partitions refuse anything else); these read as names.
A, B = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"


async def drive_doctors(nc: NATS, js: JetStreamContext) -> BalancerState:
    """The scenario of the module docstring; returns the balancer's state at the end."""
    await seed_chip(js, A, Status.ACTIVE, 4)
    sender = FakeSender()
    sender.refuse_on.add("recusa")
    client = RouteClient(nc)
    async with running_worker(nc), running_balancer(nc, FixedClock(NOW), sender=sender) as run:
        assert (await client.send("d1", PHONE, "oi", "reply", True)).status == "dispatched"
        assert (await client.send("d2", PHONE, "recusa", "reply", True)).status == "failed"
        assert (await client.send("d3", PHONE, "vaga", "prospecting")).status == "dispatched"
        assert (await client.send("d6", PHONE, "oi", "reply", True)).status == "dispatched"
        for doctor in ("d4", "d5"):  # chip a is out of today's capacity
            assert (await client.send(doctor, PHONE, "oi", "reply", True)).status == "queued"
        await client.request(rt.InboundMessage(command_id="in-d2", doctor_id="d2", text="PARAR"))
        await client.opt_out("d5", "crm")  # its queued request must not go out
        await client.opt_out("d6", "crm")
        await client.opt_in("d6", "crm")
        await seed_chip(js, B, Status.ACTIVE, 3)  # capacity frees: d4 is served from b

        async def backlog_settled() -> bool:
            assert run.leader is not None
            return not run.leader.state.backlog
        await wait_until(backlog_settled)
        ban = cmd.ReportBan(command_id="ban-a", reason="banned", evidence="connection 403")
        assert (await ChipClient(nc).send(A, ban)).ok

        async def failed_over() -> bool:
            return bool(run.failovers)
        await wait_until(failed_over)
        for n in range(10):  # d1 now sticks to b until b's day is full: one request waits
            reply = await client.send("d1", PHONE, f"mais {n}", "reply")
            if reply.status == "queued":
                break
        assert reply.status == "queued"
        assert run.leader is not None
        return run.leader.state


async def test_doctor_rows_follow_the_balancer_and_rebuild_equals_incremental(
        nc: NATS, js: JetStreamContext, database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=7)  # many small batches
    projections.start()
    try:
        state = await drive_doctors(nc, js)
        await caught_up(js, database_url)
    finally:
        await projections.stop()
    conn = await asyncpg.connect(database_url)
    try:
        for doctor_id, doctor in state.doctors.items():
            view = await doctor_view(conn, doctor_id, NOW)
            assert view is not None, doctor_id
            got = (view.chip_id, view.conversation == "consented", view.opted_out,
                   view.quarantined_until)
            assert got == (doctor.chip_id, doctor.consented, doctor.opted_out,
                           doctor.quarantined_until), doctor_id
        await check_scenario(conn)
    finally:
        await conn.close()
    incremental = await checksums(database_url)
    assert incremental["doctors"][0] == 6 and incremental["route_backlog"][0] == 3
    report = await rebuild(nc, database_url, show_progress=False)
    streams = {p.stream for p in PROJECTIONS.values()}
    assert report.events == sum([(await js.stream_info(s)).state.last_seq for s in streams])
    assert await checksums(database_url) == incremental


async def check_scenario(conn: asyncpg.Connection) -> None:
    d1, d2, d3, d6 = [await doctor_view(conn, d, NOW) for d in ("d1", "d2", "d3", "d6")]
    assert d1 is not None and d2 is not None and d3 is not None and d6 is not None
    assert (d1.chip_id, d1.reassigned_from, d1.conversation) == (B, A, "consented")
    assert d1.reassigned_at is not None and d1.assigned_at is not None
    assert d1.messages.queued == 1 and d1.messages.dispatched >= 2
    assert (d2.opted_out, d2.opted_out_source, d2.chip_id) == (True, "keyword", A)
    assert (d2.messages.failed, d2.messages.dispatched) == (1, 0)
    assert d3.quarantined and d3.chip_id is None and d3.conversation == "prospecting"
    assert d3.quarantined_until is not None and d3.quarantined_until > NOW + timedelta(days=29)
    assert (d6.opted_out, d6.opted_out_since, d6.conversation) == (False, None, "consented")
    assert d6.opted_in_at is not None
    assert await doctor_view(conn, "nobody", NOW) is None
    settled = {r["doctor_id"]: (r["status"], r["chip_id"]) for r in await conn.fetch(
        "SELECT doctor_id, status, chip_id FROM route_backlog WHERE status <> 'queued'")}
    assert settled == {"d4": ("served", B), "d5": ("cancelled", None)}
    backlog = await backlog_summary(conn, NOW + timedelta(minutes=5))
    assert backlog.waiting == 1 and backlog.oldest_age_seconds == 300.0
    leaked = await conn.fetchval(
        "SELECT count(*) FROM doctors d WHERE d::text LIKE '%987654321%'")
    assert leaked == 0
