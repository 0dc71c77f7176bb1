"""A warm-up that failed its review is visible over HTTP with its reason, and an operator
can take the chip out of it with `Resume` or `Retire`: through the worker, the projections
and the API, on real NATS and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.app import start_http
from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.config import Config
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.projections.service import Projections
from tests.conftest import new_chip_id
from tests.integration.test_projections_lifecycles import caught_up
from tests.integration.workers import SETTINGS, running_worker

TOKEN = "review-token"
CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session, self._base = session, base

    async def get(self, path: str) -> Any:
        async with self._session.get(self._base + path,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()


@pytest.fixture
async def api(nats_url: str, database_url: str) -> AsyncIterator[Api]:
    await migrate_url(database_url)
    config = Config(nats_url=nats_url, database_url=database_url, api_token=TOKEN)
    runner, port = await start_http(create_app(config, CLOCK), 0)
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://127.0.0.1:{port}")
    await runner.cleanup()


async def failed_review(chips: ChipClient) -> str:
    """A chip whose every warm day passes without traffic, so the last one fails the review."""
    chip = new_chip_id()
    commands: list[cmd.AnyChipCommand] = [
        cmd.Provision(command_id="provision", ddd=11),
        cmd.StartActivation(command_id="start"),
        cmd.CompleteActivation(command_id="complete", instance=f"chip-{chip}", host="vps-1")]
    commands += [cmd.CloseWarmDay(command_id=f"day-{n}", day_number=n)
                 for n in range(1, SETTINGS.policy.max_days + 1)]
    for command in commands:
        reply = await chips.send(chip, command)
        assert reply.ok, reply
    assert reply.state == Status.COOLING.value
    return chip


async def reviewed(api: Api) -> set[str]:
    page = await api.get("/chips?needs_review=true")
    return {item["id"] for item in page["items"]}


async def test_a_failed_review_is_listed_with_its_reason_then_resumed_or_retired(
        nc: NATS, js: JetStreamContext, database_url: str, api: Api) -> None:
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    chips = ChipClient(nc)
    try:
        async with running_worker(nc, CLOCK):
            resumed, retired = await failed_review(chips), await failed_review(chips)
            warming = new_chip_id()
            for command in (cmd.Provision(command_id="provision", ddd=11),
                            cmd.StartActivation(command_id="start"),
                            cmd.CompleteActivation(command_id="complete", instance="i", host="h")):
                assert (await chips.send(warming, command)).ok
            await caught_up(js, database_url)
            view = await api.get(f"/chips/{resumed}")
            assert view["status"] == "cooling" and view["cooled_from"] == "warming"
            assert "needs review" in view["review_reason"]
            assert (await api.get(f"/chips/{warming}"))["review_reason"] is None
            assert await reviewed(api) == {resumed, retired}
            others = await api.get("/chips?needs_review=false")
            assert {item["id"] for item in others["items"]} == {warming}

            back = await chips.send(resumed, cmd.Resume(command_id="operator-resume"))
            assert back.ok and back.state == Status.WARMING.value, back
            gone = await chips.send(retired, cmd.Retire(command_id="operator-retire",
                                                        reason="failed warm-up review"))
            assert gone.ok and gone.state == Status.RETIRED.value, gone
            await caught_up(js, database_url)
            assert await reviewed(api) == set()
            view = await api.get(f"/chips/{resumed}")
            assert view["status"] == "warming" and view["review_reason"] is None
            assert (await api.get(f"/chips/{retired}"))["status"] == "retired"
    finally:
        await chips.close()
        await projections.stop()
