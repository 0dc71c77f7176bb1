"""The webhook edge against forgery and replay, over real HTTP and JetStream.

One instance's secret speaks for that instance only; a body older than its replay window is
refused, and inside the window GATEWAY_IN's duplicate window drops the copy; Salvy's
signature headers are judged before a byte of the body is read; a timestamp out of any range
is a 400 (or a dead letter) and never a 500 or a stuck deriver.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.clock import Clock, FixedClock
from julia_chips.contract import replay
from julia_chips.contract.subjects import Stream
from julia_chips.gateways.evolution.instance_secret import instance_secret
from julia_chips.jetstream.streams import ensure_streams
from tests.integration.dead_letter_reader import stored_dead_letters
from tests.integration.ingress_fixtures import (
    EVOLUTION_SECRET,
    Ingress,
    deriving,
    serving_ingress,
    stamped,
    stored,
    until_derived,
)
from tests.integration.test_observation_deriver import observed_ids, upsert

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = datetime(2031, 5, 6, 14, 0, tzinfo=UTC)  # any day: the edge and the bodies share it


@pytest.fixture
async def edge(js: JetStreamContext) -> AsyncIterator[Ingress]:
    async with serving_ingress(js, FixedClock(NOW)) as ingress:
        yield ingress


def close_403(instance: str, clock: Clock) -> bytes:
    body = json.loads((FIXTURES / "evolution_connection_close_403.json").read_bytes())
    body["instance"] = body["data"]["instance"] = instance
    return stamped(json.dumps(body).encode(), clock)


async def post_evolution(edge: Ingress, body: bytes, header: str) -> tuple[int, str]:
    async with edge.session.post(edge.base_url + "/webhooks/evolution", data=body,
                                 headers={"x-julia-secret": header}) as resp:
        return resp.status, str((await resp.json()).get("error"))


async def test_one_instances_secret_cannot_speak_for_another(
        edge: Ingress, js: JetStreamContext) -> None:
    """A leaked instance config forges "banned" for that instance at most."""
    forged = close_403("inst-b", edge.clock)
    status, error = await post_evolution(edge, forged, instance_secret(EVOLUTION_SECRET, "inst-a"))
    assert status == 401 and "x-julia-secret" in error
    assert (await post_evolution(edge, forged, EVOLUTION_SECRET))[0] == 401  # nor the master
    assert await stored(js, Stream.GATEWAY_IN) == 0
    status, _ = await post_evolution(edge, forged, instance_secret(EVOLUTION_SECRET, "inst-b"))
    assert status == 200
    assert await stored(js, Stream.GATEWAY_IN) == 1


@pytest.mark.parametrize(("sent", "status"), [
    (NOW - replay.EVOLUTION.behind - timedelta(seconds=1), 400),  # a replay, or far too late
    (NOW + replay.EVOLUTION.ahead + timedelta(seconds=1), 400),  # from the future
    (NOW - replay.EVOLUTION.behind + timedelta(seconds=1), 200),  # Evolution's last retry
])
async def test_an_evolution_body_outside_its_replay_window_is_refused(
        edge: Ingress, js: JetStreamContext, sent: datetime, status: int) -> None:
    code, answer = await edge.evolution(close_403("inst-a", FixedClock(sent)))
    assert code == status, answer
    if status == 400:
        assert "replay window" in str(answer["error"]) and "date_time" in str(answer["error"])
    assert await stored(js, Stream.GATEWAY_IN) == (status == 200)


async def test_gateway_in_remembers_a_body_as_long_as_its_stamp_admits_it(
        js: JetStreamContext) -> None:
    """Otherwise a copy posted after the duplicate window but inside the replay window is
    stored again as a new fact (Svix took 5 minutes against a 2-minute window)."""
    await ensure_streams(js)
    window = (await js.stream_info(Stream.GATEWAY_IN)).config.duplicate_window
    assert window is not None
    assert window >= replay.EVOLUTION.span.total_seconds()
    assert window >= replay.SVIX.span.total_seconds()


async def test_salvy_signature_headers_are_judged_before_the_body_is_read(
        edge: Ingress) -> None:
    """A stranger announcing a big body gets 401 at once: nothing of it is waited for."""
    url = urlsplit(edge.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(b"POST /webhooks/salvy HTTP/1.1\r\nHost: edge\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 200000\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=2.0)
    finally:
        writer.close()
    assert status_line.split()[1] == b"401", status_line


async def test_a_stored_body_with_an_impossible_timestamp_is_dead_lettered_and_the_rest_flows(
        nc: NATS, js: JetStreamContext) -> None:
    """Stored by an older edge: the deriver names the field and goes on acking."""
    bad = json.loads(upsert(0))
    bad["data"]["messageTimestamp"] = 10**20
    async with deriving(nc) as deriver:
        await js.publish("gw.in.evolution.chip-0001", json.dumps(bad).encode())
        await js.publish("gw.in.evolution.chip-0001", upsert(1))
        await until_derived(js)
    assert deriver.rejected == 1 and deriver.derived == 1
    [(_, reason)] = await stored_dead_letters(js, "dlq.webhook.evolution.chip-0001")
    assert "$.data.messageTimestamp" in reason
    assert set(await observed_ids(js)) == {"MSG0001"}
