"""The operator endpoints over real HTTP, against a real chip worker and health monitor: the
operator token provisions and moves chips (the chip's events show it), a refused move is 409
with the allowed moves, the read token gets 403 on every write route, and a bad body is 400
naming the field with nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.app import start_http
from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.config import Config
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.fleet import FleetBrakeEngaged, FleetBrakeReleased
from julia_chips.contract.subjects import Stream
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from tests.conftest import new_chip_id
from tests.integration.health_rig import monitoring, until
from tests.integration.test_health_monitor import brake_events
from tests.integration.warm_fleet import events_of
from tests.integration.workers import running_worker

READER, OPERATOR = "read-token-1", "operator-token-2"
CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))  # the worker's and the monitor's


@pytest.fixture
async def base(nc: NATS, database_url: str) -> AsyncIterator[str]:
    """The API (both tokens set) and a chip worker that holds every partition."""
    await migrate_url(database_url)
    config = Config(nats_url="nats://unused:1", database_url=database_url,
                    api_token=READER, operator_token=OPERATOR)
    async with running_worker(nc, CLOCK):
        runner, port = await start_http(create_app(config, CLOCK, nc=nc), 0)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def post(url: str, body: Any = None, token: str | None = OPERATOR,
               raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else (b"" if body is None else msgspec.json.encode(body))
    async with aiohttp.ClientSession() as session, session.post(
            url, data=data, headers=headers) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def _activated(nc: NATS, chip: str) -> None:
    """What the activator would do once it bought and linked a number: the chip warms."""
    client = ChipClient(nc)
    try:
        for command in (cmd.StartActivation(command_id="s"),
                        cmd.CompleteActivation(command_id="c", instance=f"inst-{chip}",
                                               host="vps-1")):
            assert (await client.send(chip, command)).ok
    finally:
        await client.close()


async def _provisioned(base: str) -> str:
    status, body = await post(f"{base}/operator/chips", {"ddd": 11})
    assert status == 200, body
    assert body["state"] == "provisioning"
    assert [e["type"] for e in body["events"]] == ["Provisioned"]
    return str(body["chip_id"])


async def _stored_commands(js: JetStreamContext) -> int:
    return (await js.stream_info(Stream.CHIP_CMDS)).state.messages


async def test_the_operator_provisions_and_moves_a_chip_and_its_events_show_it(
        base: str, nc: NATS, js: JetStreamContext) -> None:
    chip = await _provisioned(base)
    await _activated(nc, chip)
    moves: list[tuple[str, dict[str, Any] | None, str, str]] = [
        ("cool", {"reason": "operator checks the number", "until": "2026-11-28T09:00:00-03:00"},
         "cooling", "Cooled"),
        ("resume", None, "warming", "Resumed"),
        ("ban", {"reason": "blocked", "evidence": "403 on connect"}, "banned", "Banned"),
        ("reinstate", {}, "warming", "Reinstated"),
        ("retire", {"reason": "number returned"}, "retired", "Retired"),
    ]
    for move, body, state, event in moves:
        status, reply = await post(f"{base}/operator/chips/{chip}/{move}", body)
        assert status == 200, (move, reply)
        assert reply["chip_id"] == chip and reply["state"] == state, (move, reply)
        assert [e["type"] for e in reply["events"]] == [event], (move, reply)
    history = [type(e).__name__ for e in await events_of(js, chip)]
    assert history == ["Provisioned", "ActivationStarted", "Activated", "Cooled", "Resumed",
                       "Banned", "Reinstated", "Retired"]
    [cooled] = [e for e in await events_of(js, chip) if type(e).__name__ == "Cooled"]
    assert cooled.until == datetime(2026, 11, 28, 12, tzinfo=UTC)  # type: ignore[attr-defined]


async def test_a_repeated_command_id_moves_once_and_a_chip_id_can_be_chosen(
        base: str, js: JetStreamContext) -> None:
    chip = new_chip_id()
    first = await post(f"{base}/operator/chips", {"chip_id": chip, "command_id": "p-1"})
    again = await post(f"{base}/operator/chips", {"chip_id": chip, "command_id": "p-1"})
    assert first[0] == again[0] == 200 and first[1]["chip_id"] == again[1]["chip_id"] == chip
    assert again[1]["events"] == first[1]["events"]  # a repeat: the same answer, once stored
    assert [type(e).__name__ for e in await events_of(js, chip)] == ["Provisioned"]


async def test_a_refused_move_is_409_with_the_rule_and_the_allowed_moves(
        base: str, js: JetStreamContext) -> None:
    chip = await _provisioned(base)
    status, body = await post(f"{base}/operator/chips/{chip}/reinstate")
    assert status == 409 and body["error"], body
    assert body["state"] == "provisioning" and body["allowed"], body
    assert "Reinstate" not in body["allowed"]
    status, body = await post(f"{base}/operator/chips/{chip}/cool", {"reason": "r"})
    assert status == 409 and body["state"] == "provisioning", body
    assert [type(e).__name__ for e in await events_of(js, chip)] == ["Provisioned"]


async def _write_paths(base: str, chip: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/openapi.json") as resp:
        doc = await resp.json()
    paths = [p.replace("{id}", "dr-1" if "/doctors/" in p else chip)
             for p, item in doc["paths"].items() if "post" in item]
    # provision, six moves, brake release, opt-out and opt-in, dead letters replay and
    # purge, settle an unknown send
    assert len(paths) == 13, paths
    return paths


async def test_the_read_token_gets_403_on_every_write_route_and_nothing_is_stored(
        base: str, js: JetStreamContext) -> None:
    chip = new_chip_id()
    for path in await _write_paths(base, chip):
        status, body = await post(f"{base}{path}", {}, token=READER)
        assert (status, body["field"]) == (403, "Authorization"), path
        for token in (None, "wrong"):
            status, body = await post(f"{base}{path}", {}, token=token)
            assert status == 401, (path, token)
    assert await _stored_commands(js) == 0


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("/operator/chips", b'{"ddd": 5}', "ddd"),
    ("/operator/chips", b'{"phone_number": "12"}', "phone_number"),
    ("/operator/chips", b'{"colour": "red"}', "colour"),
    ("/operator/chips", b'{"chip_id": "not-a-uuid"}', "chip_id"),
    ("/operator/chips", b"not json", "body"),
    ("/operator/chips", b"[]", "body"),
    ("/operator/chips/{chip}/cool", b"{}", "reason"),
    ("/operator/chips/{chip}/cool", b'{"reason": ""}', "reason"),
    ("/operator/chips/{chip}/cool", b'{"reason": "r", "until": "2026-11-28T09:00:00"}',
     "until"),
    ("/operator/chips/{chip}/ban", b'{"reason": "r"}', "evidence"),
    ("/operator/chips/{chip}/retire", b'{"reason": 3}', "reason"),
    ("/operator/chips/{chip}/resume", b'{"why": "x"}', "why"),
    ("/operator/chips/{chip}/resume", b'{"command_id": "has space"}', "command_id"),
    ("/operator/chips/not-a-uuid/resume", b"{}", "id"),
    ("/operator/brake/release", b'{"now": true}', "now"),
]


async def test_a_bad_body_is_400_naming_the_field_and_stores_nothing(
        base: str, js: JetStreamContext) -> None:
    chip = new_chip_id()
    for path, raw, field in BAD_BODIES:
        status, body = await post(base + path.format(chip=chip), raw=raw)
        assert (status, body["field"]) == (400, field), (path, raw, body)
        assert body["error"], (path, raw)
    assert await _stored_commands(js) == 0
    status, body = await post(f"{base}/operator/chips/{chip}/resume?x=1")
    assert (status, body["field"]) == (400, "x")


async def test_the_operator_releases_a_brake_that_bans_engaged(
        base: str, nc: NATS, js: JetStreamContext) -> None:
    status, body = await post(f"{base}/operator/brake/release")
    assert status == 503 and "health monitor" in body["error"]  # nobody answers yet
    async with monitoring(nc, CLOCK):
        for _ in range(3):
            chip = await _provisioned(base)
            await _activated(nc, chip)
            status, body = await post(f"{base}/operator/chips/{chip}/ban",
                                      {"reason": "blocked", "evidence": "403"})
            assert status == 200, body

        async def engaged() -> bool:
            return [type(e) for e in await brake_events(js)] == [FleetBrakeEngaged]

        await until(engaged)
        status, body = await post(f"{base}/operator/brake/release")
        assert (status, body) == (200, {"ok": True, "engaged": False})
    assert [type(e) for e in await brake_events(js)] == [FleetBrakeEngaged, FleetBrakeReleased]
