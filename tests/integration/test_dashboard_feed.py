"""The dashboard over real HTTP against a real chip worker, projections, NATS and
PostgreSQL: the pages show what the API says and escape what anyone may write into the
audit log; a browser signs in once with `?token=` and its cookie only reads; the live feed
sends each move as it is stored, resumes after `Last-Event-ID` without a repeat, beats
while idle, refuses clients beyond its bound and ends its connections on shutdown."""

from __future__ import annotations

import asyncio
import re
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
from julia_chips.contract.codec import encode_event
from julia_chips.contract.fleet import FleetBrakeEngaged
from julia_chips.contract.subjects import FLEET_BRAKE
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.http.auth import SESSION_COOKIE
from julia_chips.http.dashboard import feed
from julia_chips.projections.service import Projections
from tests.conftest import new_chip_id
from tests.integration.test_projections_lifecycles import caught_up
from tests.integration.workers import running_worker

READER, OPERATOR = "read-token-1", "operator-token-2"
CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Rig(msgspec.Struct):
    base: str
    chips: list[str]
    runner: Any
    client: ChipClient


async def _warming(client: ChipClient, chip: str) -> None:
    for command in (cmd.Provision(command_id="p", phone_number="+5511912345678", ddd=11),
                    cmd.StartActivation(command_id="s"),
                    cmd.CompleteActivation(command_id="c", instance=f"i-{chip}", host="vps-1")):
        assert (await client.send(chip, command)).ok


@pytest.fixture
async def rig(nc: NATS, js: JetStreamContext, database_url: str,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """Three warming chips, one cooled for a reason that is markup, projected and served."""
    monkeypatch.setattr(feed, "MAX_CLIENTS", 3)
    monkeypatch.setattr(feed, "HEARTBEAT", 0.3)
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    client = ChipClient(nc)
    config = Config(nats_url="nats://unused:1", database_url=database_url,
                    api_token=READER, operator_token=OPERATOR)
    async with running_worker(nc, CLOCK):
        chips = [new_chip_id() for _ in range(3)]
        for chip in chips:
            await _warming(client, chip)
        assert (await client.send(chips[2], cmd.Cool(command_id="k", reason=HOSTILE))).ok
        await caught_up(js, database_url)
        runner, port = await start_http(create_app(config, CLOCK, nc=nc), 0)
        try:
            yield Rig(base=f"http://127.0.0.1:{port}", chips=chips, runner=runner,
                      client=client)
        finally:
            await runner.cleanup()
            await client.close()
            await projections.stop()


def _bearer(token: str = READER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _get(url: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            url, allow_redirects=False, **kwargs) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_the_pages_show_what_the_api_says_and_escape_what_they_show(rig: Rig) -> None:
    status, page, headers = await _get(f"{rig.base}/", headers=_bearer())
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    _, summary, _ = await _get(f"{rig.base}/health/chips", headers=_bearer())
    by_status = msgspec.json.decode(summary)["fleet"]["by_status"]
    shown = dict(re.findall(r'id="count-(\w+)">(\d+)<', page))
    assert {k: int(v) for k, v in shown.items()} == by_status
    assert by_status["warming"] == 2 and by_status["cooling"] == 1
    assert all(f'data-chip="{chip}"' in page for chip in rig.chips)
    assert "+5511912345678" not in page and "+55 11 *******78" in page  # masked

    status, chip_page, headers = await _get(f"{rig.base}/ui/chips/{rig.chips[2]}",
                                            headers=_bearer())
    assert status == 200 and "Content-Security-Policy" in headers
    assert "<script>alert" not in chip_page and "<img src=x" not in chip_page
    assert "&lt;script&gt;alert(" in chip_page  # the cool reason, shown as text
    assert "Cooled" in chip_page and "Provisioned" in chip_page
    assert "+5511912345678" not in chip_page
    assert (await _get(f"{rig.base}/ui/chips/{new_chip_id()}", headers=_bearer()))[0] == 404
    assert (await _get(f"{rig.base}/ui/chips/not-a-chip", headers=_bearer()))[0] == 400
    assert (await _get(f"{rig.base}/?status=lost", headers=_bearer()))[0] == 400
    for asset in ("/ui/dashboard.js", "/ui/dashboard.css"):
        assert (await _get(rig.base + asset))[0] == 200  # open: no data in them


async def test_a_browser_signs_in_once_and_its_cookie_only_reads(rig: Rig) -> None:
    status, body, headers = await _get(f"{rig.base}/")
    assert status == 401 and "text/html" in headers["Content-Type"] and "?token=" in body
    assert (await _get(f"{rig.base}/?token=wrong"))[0] == 401
    assert (await _get(f"{rig.base}/chips?token={READER}"))[0] == 401  # pages only
    # unsafe: aiohttp keeps no cookie of a bare IP address otherwise (a browser does)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{rig.base}/?status=cooling&token={READER}",
                               allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/?status=cooling"
            cookie = resp.headers["Set-Cookie"]
        assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie and READER not in cookie
        for path in ("/?status=cooling", f"/ui/chips/{rig.chips[0]}", "/chips",
                     "/health/chips"):
            async with session.get(rig.base + path) as resp:
                assert resp.status == 200, path
        async with session.get(f"{rig.base}/events/stream") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
        async with session.post(f"{rig.base}/operator/chips/{rig.chips[0]}/retire",
                                json={"reason": "csrf"}) as resp:
            assert resp.status == 401  # the cookie never operates
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{rig.base}/?token={OPERATOR}") as resp:
            assert resp.status == 200  # followed the redirect, signed in
        async with session.post(f"{rig.base}/operator/chips/{rig.chips[0]}/retire",
                                json={"reason": "csrf"}) as resp:
            assert resp.status == 401  # not even an operator's


class Message(msgspec.Struct):
    event: str
    id: str
    data: Any


async def _messages(resp: aiohttp.ClientResponse, n: int, timeout: float = 15
                    ) -> list[Message]:
    """The next `n` events of a feed (comments skipped)."""
    out: list[Message] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while len(out) < n:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line == "" and "event" in fields:
                out.append(Message(event=fields["event"], id=fields["id"],
                                   data=msgspec.json.decode(fields["data"])))
                fields = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    return out


async def test_the_feed_sends_each_move_live_and_resumes_after_the_last_id(
        rig: Rig, js: JetStreamContext) -> None:
    chip = rig.chips[0]
    async with aiohttp.ClientSession(headers=_bearer()) as session:
        async with session.get(f"{rig.base}/events/stream") as resp:
            assert resp.status == 200
            assert (await resp.content.readline()).startswith(b"retry: ")
            assert (await rig.client.send(chip, cmd.Cool(command_id="k2", reason="rest"))).ok
            assert (await rig.client.send(chip, cmd.Resume(command_id="r2"))).ok
            await js.publish(FLEET_BRAKE, encode_event(FleetBrakeEngaged(  # type: ignore[arg-type]
                event_id="b1", occurred_at=CLOCK.now(), reason="ban wave", bans_in_window=3,
                window_seconds=3600, until=CLOCK.now())))
            cooled, resumed, brake = await _messages(resp, 3)
        assert (cooled.event, cooled.data["type"], cooled.data["chip_id"]) == (
            "chip", "Cooled", chip)
        assert (cooled.data["previous_status"], cooled.data["status"]) == ("warming", "cooling")
        assert cooled.data["line"]["number"] == "+55 11 *******78"
        assert (resumed.data["previous_status"], resumed.data["status"]) == ("cooling",
                                                                            "warming")
        assert brake.event == "fleet" and brake.data["engaged"] is True
        chip_seq, fleet_seq = (int(n) for n in brake.id.split(":"))
        assert chip_seq == resumed.data["seq"] == cooled.data["seq"] + 1
        assert fleet_seq == brake.data["seq"] and cooled.id == f"{chip_seq - 1}:0"

        # The browser reconnects with the last id it saw: what follows, nothing twice.
        async with session.get(f"{rig.base}/events/stream",
                               headers={"Last-Event-ID": cooled.id}) as resp:
            assert (await rig.client.send(rig.chips[1], cmd.Retire(
                command_id="t", reason="number returned"))).ok
            got = await _messages(resp, 3)
        again, retired = (m for m in got if m.event == "chip")
        assert [m.data["seq"] for m in got if m.event == "fleet"] == [fleet_seq]
        assert again.data["type"] == "Resumed" and again.data["seq"] == chip_seq
        # The state before it, even when the read model already holds it.
        assert (again.data["previous_status"], again.data["status"]) == ("cooling", "warming")
        assert retired.data["status"] == "retired" and retired.data["chip_id"] == rig.chips[1]
        assert got[-1].id == f"{retired.data['seq']}:{fleet_seq}"

        # One chip's page follows that chip only.
        async with session.get(f"{rig.base}/events/stream?chip={chip}&after=0:0") as resp:
            history = await _messages(resp, 5)
        assert [m.data["type"] for m in history] == [
            "Provisioned", "ActivationStarted", "Activated", "Cooled", "Resumed"]
        for bad, field in ((f"{rig.base}/events/stream?after=1", "after"),
                           (f"{rig.base}/events/stream?chip=x", "chip")):
            async with session.get(bad) as resp:
                assert resp.status == 400 and (await resp.json())["field"] == field
        async with session.get(f"{rig.base}/events/stream",
                               headers={"Last-Event-ID": "x"}) as resp:
            assert resp.status == 400 and (await resp.json())["field"] == "Last-Event-ID"


async def test_feeds_are_bounded_beat_while_idle_and_end_on_shutdown(rig: Rig) -> None:
    async with aiohttp.ClientSession(headers=_bearer()) as session:
        feeds = [await session.get(f"{rig.base}/events/stream") for _ in range(3)]
        assert [r.status for r in feeds] == [200, 200, 200]
        async with session.get(f"{rig.base}/events/stream") as refused:
            assert refused.status == 503 and "live feeds" in (await refused.json())["error"]
        lines: list[bytes] = []
        async with asyncio.timeout(5):
            while b": heartbeat\n" not in lines:
                lines.append(await feeds[0].content.readline())
        started = asyncio.get_running_loop().time()
        await rig.runner.cleanup()  # as `run` does on SIGINT, with three feeds open
        assert asyncio.get_running_loop().time() - started < 5
        for resp in feeds:
            async with asyncio.timeout(5):
                while await resp.content.readline():
                    pass  # drained to the end: the server closed it
            resp.close()
