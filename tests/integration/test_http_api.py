"""The HTTP read API against real NATS and PostgreSQL: every route, every error status, the
bearer token, and a property test over every route `/openapi.json` declares."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.app import start_http
from julia_chips.clock import FixedClock
from julia_chips.config import Config
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import message_events, route_events
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.projections.service import Projections
from tests.integration.test_projections_lifecycles import (
    T0,
    caught_up,
    drive_chips,
    publish_brake,
)

TOKEN = "s3cret-token"
PHONE = "+5511987654321"  # in a queued request: must never come out of the API
DOCTORS = ["dr-ana", "dr-bia"]
# The API reads the time (brake released? quarantine over? bans in the last 7 days?) from the
# clock it is given: the one the fleet's history was written with, a few hours after T0, not
# the wall clock, which passes every fixed date sooner or later.
API_CLOCK = FixedClock(T0 + timedelta(hours=3))


async def publish_doctors(js: JetStreamContext) -> None:
    """A prospected doctor who replied, three sends settled three ways, one request waiting;
    a second doctor who opted out by keyword."""
    d: dict[str, Any] = {"doctor_id": "dr-ana", "command_id": "c", "occurred_at": T0}
    route: list[rt.RouteEvent] = [
        rt.ConversationAssigned(event_id="r1", chip_id="chip-x", consented=False, **d),
        rt.DoctorReplied(event_id="r2", chip_id="chip-x", **d),
        rt.RequestQueued(event_id="r3", request_id="q1", doctor_phone=PHONE, text="oi",
                         kind="reply", consented=True, reason="no capacity", **d),
        rt.DoctorOptedOut(event_id="r4", doctor_id="dr-bia", command_id="c", occurred_at=T0,
                          source="keyword")]
    for r in route:
        await js.publish(route_events(r.doctor_id), ENCODER.encode(r))
    a: dict[str, Any] = {"chip_id": "chip-x", "occurred_at": T0}
    ledger: list[msg.MessageEvent] = []
    for n, outcome in enumerate(("dispatched", "failed", "unknown")):
        ledger.append(msg.SendAttempted(event_id=f"m{n}", attempt_id=f"t{n}", doctor_id="dr-ana",
                                        kind="reply", consented=True, **a))
        ledger.append(msg.SendDispatched(event_id=f"m{n}:o", attempt_id=f"t{n}", message_id="w",
                                         **a) if outcome == "dispatched" else
                      {"failed": msg.SendFailed, "unknown": msg.SendUnknown}[outcome](
                          event_id=f"m{n}:o", attempt_id=f"t{n}", reason="gateway", **a))
    for m in ledger:
        await js.publish(message_events(m.chip_id), ENCODER.encode(m))


class Fleet(msgspec.Struct):
    base: str
    chips: list[str]
    nats_url: str
    database_url: str


@pytest.fixture
async def fleet(nc: NATS, js: JetStreamContext, nats_url: str,
                database_url: str) -> AsyncIterator[Fleet]:
    """A projected fleet of 12 chips and the API serving it, token required."""
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    chips = await drive_chips(nc, chips=12, steps=10, seed=3)
    await publish_brake(js)
    await publish_doctors(js)
    await caught_up(js, database_url)
    config = Config(nats_url=nats_url, database_url=database_url, api_token=TOKEN)
    runner, port = await start_http(create_app(config, API_CLOCK), 0)
    yield Fleet(f"http://127.0.0.1:{port}", chips, nats_url, database_url)
    await runner.cleanup()
    await projections.stop()


async def get(url: str, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        text = await resp.text()
        is_json = resp.content_type == "application/json"
        return resp.status, msgspec.json.decode(text) if is_json else text


async def test_every_route_answers(fleet: Fleet) -> None:
    chip = fleet.chips[0]
    status, body = await get(f"{fleet.base}/health", token=None)
    assert (status, body) == (200, {"status": "ok", "nats": True, "postgres": True})
    status, body = await get(f"{fleet.base}/health/chips")
    assert status == 200 and body["fleet"]["chips_total"] == 12
    assert sum(body["fleet"]["by_status"].values()) == 12
    assert body["fleet"]["brake"]["engaged"] is True
    assert body["projections"]["julia_chips"]["lag"] == 0
    status, body = await get(f"{fleet.base}/chips/{chip}")
    assert status == 200 and body["id"] == chip and body["last_seq"] > 0
    status, body = await get(f"{fleet.base}/chips/{chip}/events?limit=2")
    assert status == 200 and [e["type"] for e in body["items"]] == [
        "Provisioned", "ActivationStarted"]
    status, rest = await get(f"{fleet.base}/chips/{chip}/events?from_seq={body['next_seq']}")
    assert status == 200 and rest["items"][0]["type"] == "Activated"
    assert rest["items"][0]["seq"] >= body["next_seq"] > body["items"][-1]["seq"]
    status, late = await get(f"{fleet.base}/chips/{chip}/events?since=2030-01-01T00:00:00Z")
    assert status == 200 and late["items"] == []
    status, body = await get(f"{fleet.base}/chips/{chip}/warmer-metrics")
    assert status == 200 and body["chip_id"] == chip and body["total"] == len(body["items"])
    status, text = await get(f"{fleet.base}/metrics")
    assert status == 200
    for name in ("chips_total 12.0", "chips_active", "chips_warming", "chips_banned_last_7d",
                 "julia_projection_lag_events", "julia_commands_processed_total"):
        assert name in text
    assert "fleet_brake_engaged 1.0" in text and "balancer_backlog_requests 1.0" in text
    assert "balancer_backlog_oldest_seconds" in text
    status, doc = await get(f"{fleet.base}/openapi.json", token=None)
    assert status == 200 and doc["openapi"].startswith("3.")


async def test_doctor_route_and_backlog(fleet: Fleet) -> None:
    status, ana = await get(f"{fleet.base}/doctors/dr-ana")
    assert status == 200
    assert (ana["chip_id"], ana["conversation"], ana["opted_out"]) == (
        "chip-x", "consented", False)
    assert ana["messages"] == {"attempted": 3, "dispatched": 1, "failed": 1, "unknown": 1,
                               "in_flight": 0, "queued": 1,
                               "delivered": 0, "read": 0, "replied": 0}  # no receipts yet
    assert ana["assigned_at"] == ana["replied_at"] == T0.isoformat().replace("+00:00", "Z")
    status, bia = await get(f"{fleet.base}/doctors/dr-bia")
    assert status == 200 and (bia["opted_out"], bia["opted_out_source"]) == (True, "keyword")
    assert bia["chip_id"] is None and bia["conversation"] == "prospecting"
    assert bia["messages"]["attempted"] == 0
    status, health = await get(f"{fleet.base}/health/chips")
    backlog = health["fleet"]["backlog"]
    assert backlog["waiting"] == 1 and backlog["oldest_age_seconds"] > 0
    assert health["projections"]["doctors"]["lag"] == 0
    assert health["projections"]["message_attempts"]["lag"] == 0
    for path in ("/doctors/dr-ana", "/health/chips", "/metrics"):  # LGPD: no phone, ever
        _, body = await get(f"{fleet.base}{path}")
        assert "987654321" not in (body if isinstance(body, str) else msgspec.json.encode(
            body).decode()), path


async def test_pagination_by_offset_and_cursor(fleet: Fleet) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        status, page = await get(f"{fleet.base}/chips?limit=5{cursor}")
        assert status == 200 and page["total"] == 12
        seen += [c["id"] for c in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == sorted(fleet.chips)
    _, page = await get(f"{fleet.base}/chips?limit=5&offset=10")
    assert [c["id"] for c in page["items"]] == sorted(fleet.chips)[10:]
    _, every = await get(f"{fleet.base}/chips?limit=500")
    some = every["items"][0]["status"]
    _, by_status = await get(f"{fleet.base}/chips?status={some}")
    assert by_status["items"] and {c["status"] for c in by_status["items"]} == {some}


BAD_REQUESTS = [
    ("/chips/not-a-uuid", 400, "id"),
    ("/chips/not-a-uuid/events", 400, "id"),
    ("/chips/not-a-uuid/warmer-metrics", 400, "id"),
    (f"/chips/{uuid.uuid4()}", 404, "id"),
    (f"/chips/{uuid.uuid4()}/events", 404, "id"),
    (f"/chips/{uuid.uuid4()}/warmer-metrics", 404, "id"),
    ("/chips?status=sleeping", 400, "status"),
    ("/chips?limit=0", 400, "limit"),
    ("/chips?limit=abc", 400, "limit"),
    ("/chips?offset=-1", 400, "offset"),
    ("/chips?cursor=zzz", 400, "cursor"),
    ("/chips?colour=red", 400, "colour"),
    ("/chips?limit=1&limit=2", 400, "limit"),
    ("/doctors/dr.ana", 400, "id"),
    ("/doctors/-ana", 400, "id"),
    ("/doctors/" + "a" * 65, 400, "id"),
    ("/doctors/dr%20ana", 400, "id"),
    ("/doctors/nobody", 404, "id"),
    ("/doctors/dr-ana?x=1", 400, "x"),
    ("/health/chips?x=1", 400, "x"),
    ("/metrics?x=1", 400, "x"),
]


async def test_bad_requests_get_json_errors(fleet: Fleet) -> None:
    for path, status, field in BAD_REQUESTS:
        got, body = await get(f"{fleet.base}{path}")
        assert got == status, (path, body)
        assert body["field"] == field and body["error"], path


async def test_event_query_errors(fleet: Fleet) -> None:
    chip = fleet.chips[0]
    for query, field in (("from_seq=0", "from_seq"), ("since=yesterday", "since"),
                         ("since=2026-01-01T00:00:00", "since"), ("limit=501", "limit")):
        status, body = await get(f"{fleet.base}/chips/{chip}/events?{query}")
        assert (status, body["field"]) == (400, field), query


async def test_unknown_routes_and_methods_are_json(fleet: Fleet) -> None:
    status, body = await get(f"{fleet.base}/nope")
    assert status == 404 and body["error"]
    async with aiohttp.ClientSession() as session, session.post(
            f"{fleet.base}/chips", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 405 and (await resp.json())["error"]


async def test_token_is_required_except_on_health(fleet: Fleet) -> None:
    for path in ("/health/chips", "/chips", f"/chips/{fleet.chips[0]}", "/metrics",
                 "/doctors/dr-ana",
                 f"/chips/{fleet.chips[0]}/events", f"/chips/{fleet.chips[0]}/warmer-metrics"):
        for token in (None, "wrong"):
            status, body = await get(f"{fleet.base}{path}", token=token)
            assert status == 401 and body["field"] == "Authorization", (path, token)
    assert (await get(f"{fleet.base}/health", token=None))[0] == 200
    assert (await get(f"{fleet.base}/openapi.json", token=None))[0] == 200


async def test_openapi_lists_exactly_the_routes(fleet: Fleet) -> None:
    _, doc = await get(f"{fleet.base}/openapi.json")
    app = create_app(Config(nats_url="nats://x:1", database_url="postgresql://x"))
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert set(doc["paths"]) | {"/openapi.json"} == served
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            allowed = ({"200", "400", "401", "404", "503"} if method == "get"
                       else {"200", "400", "401", "403", "409", "503"})  # operator writes
            if "text/html" in operation["responses"]["200"].get("content", {}):
                allowed |= {"303"}  # a page signs a browser in with `?token=`
            for status in operation["responses"]:
                assert status in allowed, (method, path)
    [doctor_id] = doc["paths"]["/doctors/{id}"]["get"]["parameters"]
    assert doctor_id["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_-]*$"
    assert doctor_id["schema"]["maxLength"] == 64
    [chip_id] = doc["paths"]["/chips/{id}"]["get"]["parameters"]
    assert chip_id["schema"] == {"type": "string", "format": "uuid"}
    schemas = doc["components"]["schemas"]
    assert {"DoctorView", "MessageCounts", "BacklogSummary"} <= set(schemas)
    assert "backlog" in schemas["FleetSummary"]["required"]


async def test_postgres_away_is_503_not_500(nc: NATS, nats_url: str) -> None:
    config = Config(nats_url=nats_url, database_url="postgresql://postgres@127.0.0.1:1/none")
    runner, port = await start_http(create_app(config), 0)
    try:
        status, body = await get(f"http://127.0.0.1:{port}/health", token=None)
        assert status == 503 and body["postgres"] is False and body["nats"] is True
        status, body = await get(f"http://127.0.0.1:{port}/chips", token=None)
        assert status == 503 and body["error"]
    finally:
        await runner.cleanup()


# --- property test over the running server: every route in /openapi.json ---------------

class ServedInThread:
    """The app on its own event loop in a thread, so hypothesis can drive it synchronously."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = asyncio.run_coroutine_threadsafe(
            start_http(create_app(config, API_CLOCK), 0), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def served(fleet: Fleet) -> Iterator[tuple[ServedInThread, Fleet]]:
    server = ServedInThread(Config(nats_url=fleet.nats_url, database_url=fleet.database_url,
                                   api_token=TOKEN))
    yield server, fleet
    server.close()


def _value(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[str]:
    """Valid-looking values from the parameter's schema, mixed with junk."""
    junk = st.text(min_size=0, max_size=12)
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    options = schema.get("anyOf", [schema])
    valid: list[st.SearchStrategy[str]] = []
    for option in options:
        if "$ref" in option:
            option = components[option["$ref"].rsplit("/", 1)[-1]]
        if "enum" in option:
            valid.append(st.sampled_from([str(v) for v in option["enum"]]))
        elif option.get("type") == "integer":
            valid.append(st.integers(option.get("minimum", -5) - 2,
                                     min(option.get("maximum", 10**6), 10**6) + 2).map(str))
        elif option.get("format") == "date-time":
            valid.append(st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
                lambda d: d.isoformat()))
        elif option.get("type") == "string":
            valid.append(st.uuids().map(str))
    return st.one_of(*valid, junk) if valid else junk


def _get_sync(url: str, token: str | None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get_content_type()
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get_content_type()


def test_every_openapi_route_answers_as_declared(
        served: tuple[ServedInThread, Fleet]) -> None:
    server, fleet = served
    base = f"http://127.0.0.1:{server.port}"
    doc = msgspec.json.decode(_get_sync(f"{base}/openapi.json", None)[1])
    components = doc["components"]["schemas"]
    ids = st.one_of(st.sampled_from(fleet.chips), st.sampled_from(DOCTORS),
                    st.uuids().map(str), st.text(min_size=1, max_size=20))

    # The writes: test_http_operator.py; the live feed, which never ends: test_dashboard_feed.py
    reads = {path: item["get"] for path, item in doc["paths"].items() if "get" in item
             and "text/event-stream" not in item["get"]["responses"]["200"]["content"]}
    for path, operation in reads.items():
        params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        declared = {int(s) for s in operation["responses"]}
        page = "text/html" in operation["responses"]["200"]["content"]
        queries = st.fixed_dictionaries({}, optional={
            name: _value(p["schema"], components) for name, p in params.items()})

        @settings(max_examples=25, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(chip=ids, query=queries, token=st.sampled_from([TOKEN, TOKEN, None, "bad"]),
               path=st.just(path), declared=st.just(declared), page=st.just(page))
        def check(chip: str, query: dict[str, str], token: str | None,
                  path: str, declared: set[int], page: bool) -> None:
            url = base + path.replace("{id}", urllib.parse.quote(chip, safe=""))
            if query:
                url += "?" + urllib.parse.urlencode(query)
            status, body, content_type = _get_sync(url, token)
            assert status != 500, (url, body)
            assert status in declared | {404 if "{id}" in path else 400}, (url, status, body)
            if status == 401 and page:  # a person at a browser is told how to sign in
                assert content_type == "text/html" and b"?token=" in body
            elif status >= 400:
                assert content_type == "application/json"
                assert msgspec.json.decode(body)["error"]

        check()
