"""The number the activator buys reaches `julia_chips`: through the running system (sandbox
Salvy over real HTTP, the chip worker, the projections, the read API), and by a rebuild for
history stored before `Activated` carried it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.app import start_http
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.chip.model.lifecycle import fold
from julia_chips.config import Config
from julia_chips.contract import activation as saga_ev
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import activation_events
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.projections.audit import compare, read_row
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import Projections
from tests.conftest import new_chip_id
from tests.integration.activation_fixtures import activation_world, running_activator
from tests.integration.raw_events import store_raw_event
from tests.integration.test_http_api import TOKEN, get
from tests.integration.test_projections_lifecycles import T0, caught_up


async def test_a_chip_provisioned_by_area_code_shows_its_number_and_salvy_id(
        nc: NATS, js: JetStreamContext, nats_url: str, database_url: str) -> None:
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    try:
        async with activation_world(nc) as world, running_activator(world):
            [chip] = await world.provision(1, ddd=21)
            await world.until_settled([chip], timeout=30)
            [account] = world.sandbox.salvy.accounts.values()
        await caught_up(js, database_url)
        config = Config(nats_url=nats_url, database_url=database_url, api_token=TOKEN)
        runner, port = await start_http(create_app(config, nc=nc), 0)
        try:
            status, body = await get(f"http://127.0.0.1:{port}/chips/{chip}")
        finally:
            await runner.cleanup()
    finally:
        await projections.stop()
    assert status == 200 and body["status"] == "warming", body
    assert (body["phone_number"], body["salvy_account_id"], body["ddd"]) == (
        account["phoneNumber"], account["id"], 21)


def _old_chip_events(chip: str) -> list[dict[str, Any]]:
    """A chip provisioned by area code and activated, as the code before this change wrote
    it: no number in `Provisioned`, none in `Activated`."""
    common = {"chip_id": chip, "occurred_at": T0.isoformat()}
    return [
        {"type": "Provisioned", "event_id": f"{chip}:p:0", "command_id": "p",
         "phone_number": None, "ddd": 11, "salvy_account_id": None, **common},
        {"type": "ActivationStarted", "event_id": f"{chip}:activator:start:0",
         "command_id": "activator:start", "host": None, **common},
        {"type": "Activated", "event_id": f"{chip}:activator:complete:0",
         "command_id": "activator:complete", "instance": f"chip-{chip}", "host": "vps-1",
         "daily_cap": 20, **common},
    ]


def _old_saga(chip: str, phone: str, account: str) -> list[saga_ev.AnyActivationEvent]:
    at = {"chip_id": chip}
    steps: list[saga_ev.AnyActivationEvent] = [
        saga_ev.ActivationRequested(event_id=f"{chip}:1", occurred_at=T0, ddd=11, **at),
        saga_ev.ChipActivating(event_id=f"{chip}:2", occurred_at=T0, **at),
        saga_ev.NumberObtained(event_id=f"{chip}:3", occurred_at=T0, phone_number=phone,
                               salvy_account_id=account, **at),
        saga_ev.HostAllocated(event_id=f"{chip}:4", occurred_at=T0, host="vps-1", **at),
        saga_ev.ActivationCompleted(event_id=f"{chip}:5", occurred_at=T0 + timedelta(1),
                                    instance=f"chip-{chip}", host="vps-1", **at),
    ]
    return steps


async def test_a_rebuild_fills_the_numbers_of_chips_activated_before_the_change(
        nc: NATS, js: JetStreamContext, database_url: str) -> None:
    await migrate_url(database_url)
    numbers = {new_chip_id(): (f"+55119{n:08d}", f"acc-{n}") for n in range(3)}
    for chip, (phone, account) in numbers.items():
        for body in _old_chip_events(chip):
            await store_raw_event(js, body, version=1)
        for event in _old_saga(chip, phone, account):
            await js.publish(activation_events(chip), ENCODER.encode(event))
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    try:
        await caught_up(js, database_url)
    finally:
        await projections.stop()
    conn = await asyncpg.connect(database_url)
    try:
        before = {c: await read_row(conn, c) for c in numbers}
        assert {(r.phone_number, r.salvy_account_id) for r in before.values() if r} == {
            ("", None)}  # what the old code left, and the incremental projection keeps
        await rebuild(nc, database_url, "julia_chips", show_progress=False)
        log = JetStreamChipEventLog(js)
        for chip, (phone, account) in numbers.items():
            row = await read_row(conn, chip)
            assert row is not None and (row.phone_number, row.salvy_account_id) == (
                phone, account)
            assert row.status == "warming" and row.instance == f"chip-{chip}"
            history = await log.load(chip)
            state = fold(chip, [s.event for s in history])
            assert compare(state, row, history[-1].seq) == []  # the audit accepts it
    finally:
        await conn.close()
