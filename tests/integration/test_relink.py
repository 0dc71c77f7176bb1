"""Ways out of a logout and of an abandoned activation, through the running parts: the
sandbox's Evolution closes an instance with 401, its webhook goes through the edge and the
deriver to the health monitor, the chip relinks through the activator, and the pairing code
shows over HTTP from the projection. Real NATS, PostgreSQL, HTTP and SSH."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from nats.aio.client import Client as NATS

from julia_chips.activation.activator import ActivatorSettings
from julia_chips.activation.model.saga import instance_name
from julia_chips.activation.model.steps import SagaPolicy
from julia_chips.app import start_http
from julia_chips.clock import SystemClock
from julia_chips.config import Config
from julia_chips.contract import activation as sev
from julia_chips.contract import chip as ev
from julia_chips.contract.activation import Step
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.operations.activations import retry_activation
from julia_chips.projections.service import Projections
from tests.integration.activation_fixtures import World, activation_world, running_activator
from tests.integration.health_rig import monitoring
from tests.integration.test_activation_retry import until_activated

TOKEN = "relink-token"
TRIES = 2


def settings(relink_wait: float = 20.0) -> ActivatorSettings:
    return ActivatorSettings(policy=SagaPolicy(
        max_attempts=3, attempts_by_step={Step.RELINK: TRIES}, call_timeout=10.0,
        backoff_base=0.05, backoff_max=0.2,
        wait_timeouts={Step.CODE: 5.0, Step.CONNECTION: 1.0, Step.RELINK: relink_wait}))


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session, self._base = session, base

    async def chip(self, chip_id: str, path: str = "") -> dict[str, Any] | None:
        async with self._session.get(f"{self._base}/chips/{chip_id}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
            return await answer.json() if answer.status == 200 else None  # type: ignore[no-any-return]

    async def until(self, chip_id: str, check: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The chip's view once `check(view)` holds (the projection catches up on its own)."""
        async with asyncio.timeout(timeout):
            while True:
                view = await self.chip(chip_id)
                if view is not None and check(view):
                    return view
                await asyncio.sleep(0.05)


@asynccontextmanager
async def read_api(nc: NATS, nats_url: str, database_url: str) -> AsyncIterator[Api]:
    """The projections and the HTTP read API over them."""
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    config = Config(nats_url=nats_url, database_url=database_url, api_token=TOKEN)
    runner, port = await start_http(create_app(config, SystemClock()), 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
        await projections.stop()


async def enter_on_phone(world: World, instance: str, code: str) -> int:
    """The sandbox's hook for the phone's side of linking by number, over its HTTP API."""
    async with aiohttp.ClientSession() as http, http.post(
            f"{world.sandbox.evolution_url}/sandbox/pairing/{instance}", json={"code": code},
            headers={"apikey": world.sandbox.evolution_api_key}) as answer:
        return answer.status


async def linked_chip(world: World) -> str:
    [chip] = await world.provision(1)
    await until_activated(world, chip)
    return chip


async def test_a_logged_out_chip_shows_a_pairing_code_and_once_entered_is_back_in_service(
        nc: NATS, nats_url: str, database_url: str) -> None:
    async with activation_world(nc) as world, \
            running_activator(world, settings(), registrar="vps"), \
            monitoring(nc, SystemClock()), read_api(nc, nats_url, database_url) as api:
        chip = await linked_chip(world)
        await api.until(chip, lambda v: v["status"] == "warming")
        evolution, instance = world.sandbox.evolution, instance_name(chip)
        evolution.link_delay = None  # from now on only the code entered on the phone links
        evolution.disconnect(instance, 401)

        relinking = await api.until(chip, lambda v: (v["relink"] or {}).get("pairing_code"))
        assert relinking["status"] == "relinking"
        relink = relinking["relink"]
        assert relink["attempt"] == 1 and "401" in relink["reason"]
        assert relink["pairing_code"] == evolution.instances[instance].pairing_code
        assert await enter_on_phone(world, instance, "WRONG000") == 400
        assert evolution.instances[instance].state == "connecting"
        assert await enter_on_phone(world, instance, relink["pairing_code"]) == 200

        back = await api.until(chip, lambda v: v["status"] == "warming")
        assert back["relink"] is None and back["relink_pairing_code"] is None
        assert back["relink_attempt"] == 0 and back["review_reason"] is None
        await world.until_saga(chip, sev.RelinkCompleted)
        shown = await api.chip(chip, "/events")
        assert shown is not None
        [offered] = [e["event"] for e in shown["items"] if e["type"] == "RelinkStarted"]
        assert offered["pairing_code"] == "<hidden>"  # history shows only that there was one
    history = [type(e) for e in await world.chip_events(chip)]
    assert history[-3:] == [ev.RelinkRequested, ev.RelinkStarted, ev.Relinked]
    assert ev.Cooled not in history and ev.Banned not in history


async def test_a_relink_that_keeps_failing_cools_the_chip_for_review_naming_the_logout(
        nc: NATS, nats_url: str, database_url: str) -> None:
    async with activation_world(nc) as world, \
            running_activator(world, settings(relink_wait=1.0), registrar="vps"), \
            monitoring(nc, SystemClock()), read_api(nc, nats_url, database_url) as api:
        chip = await linked_chip(world)
        world.sandbox.evolution.link_delay = None  # nobody ever enters the code
        world.sandbox.evolution.disconnect(instance_name(chip), 401)
        cooled = await api.until(chip, lambda v: v["status"] == "cooling")
        await world.until_saga(chip, sev.LinkFailureReported)
    assert cooled["relink"] is None and cooled["relink_pairing_code"] is None
    assert cooled["cooled_from"] == "warming" and cooled["cooling_until"] is None
    assert "logged out (401)" in cooled["review_reason"]
    assert f"after {TRIES} tries" in cooled["review_reason"]
    history = await world.chip_events(chip)
    tries = [e for e in history if isinstance(e, ev.RelinkStarted)]
    assert [e.attempt for e in tries] == [1, 2]
    assert len({e.pairing_code for e in tries}) == TRIES  # a fresh code each try
    assert [e.attempt for e in history if isinstance(e, ev.RelinkFailed)] == [1, 2]


async def test_an_abandoned_activation_frees_its_slot_and_a_retry_takes_one_again(
        nc: NATS) -> None:
    async with activation_world(nc, link_delay=None) as world, \
            running_activator(world, settings(), registrar="vps"):
        [chip] = await world.provision(1)  # registered (a slot taken), never linked
        await world.until_saga(chip, sev.FailureReported, timeout=30)
        sandbox = world.sandbox
        assert sum(h.used_slots for h in sandbox.hosts) == 0
        assert instance_name(chip) not in sandbox.evolution.instances
        released = [e for e in await world.chip_events(chip)
                    if isinstance(e, ev.ResourceReleased)]
        assert [e.resource for e in released] == ["delete_instance", "free_slot"]
        assert "freed" in released[1].detail
        sandbox.evolution.link_delay = 0.05
        reply = await retry_activation(world.chips, chip)
        assert reply.ok, reply
        activated = await until_activated(world, chip)
        assert sum(h.used_slots for h in sandbox.hosts) == 1
    [account] = world.sandbox.salvy.accounts.values()  # the same number, bought once
    assert activated.phone_number == account["phoneNumber"]
    saga = [type(e) for e in await world.saga_events(chip)]
    assert saga.index(sev.HostReleased) < saga.index(sev.ActivationResumed)
    assert saga[-1] is sev.ActivationCompleted
