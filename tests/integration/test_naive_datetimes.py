"""A time without a zone, end to end: refused at the door, read as UTC from the old log.

A `Cool` whose `until` had no zone used to be stored in `Cooled`; from then on the health
monitor's checks raised `TypeError` (naive vs aware) and no chip of the fleet was cooled,
banned or braked any more. Real NATS, worker, monitor, webhook ingress, projections, HTTP.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.app import start_http
from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.config import Config
from julia_chips.contract import chip as ev
from julia_chips.contract.observations import ConnectionUpdate
from julia_chips.contract.subjects import JuliaHeader, Stream, gateway_raw
from julia_chips.db.migrate import migrate_url
from julia_chips.http.app import create_app
from julia_chips.ingest.observation_log import decode_observation, publish_observation
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.projections.service import Projections
from tests.conftest import new_chip_id
from tests.integration.dead_letter_reader import stored_dead_letters
from tests.integration.health_rig import connection, monitoring, until
from tests.integration.ingress_fixtures import deriving, serving_ingress, stamped, until_derived
from tests.integration.raw_events import banned, kinds, naive, store_old_cooled
from tests.integration.warm_fleet import MORNING, events_of, warming_chips
from tests.integration.workers import running_worker

FIXTURES = Path(__file__).parent.parent / "fixtures"


def close_403(instance: str) -> bytes:
    """Evolution's connection.update for a chip WhatsApp banned (403), for `instance`."""
    body = json.loads((FIXTURES / "evolution_connection_close_403.json").read_bytes())
    body["instance"] = body["data"]["instance"] = instance
    return json.dumps(body).encode()


async def test_a_cool_whose_until_has_no_zone_is_refused_and_the_monitor_still_bans(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    client = ChipClient(nc)
    cooled, other = new_chip_id(), new_chip_id()
    body = msgspec.json.encode({"type": "Cool", "command_id": "naive-cool", "reason": "r",
                                "until": naive(clock.now() + timedelta(hours=2))})
    async with running_worker(nc, clock), monitoring(nc, clock) as monitor, \
            serving_ingress(js, clock) as ingress, deriving(nc):
        await warming_chips(client, [cooled, other])
        await until(lambda: _known(monitor, [cooled, other]))
        reply = await client.send_raw(cooled, body)
        assert reply.ok is False
        assert "with a timezone component - at `$.until`" in (reply.error or ""), reply
        status, answer = await ingress.evolution(stamped(close_403(f"inst-{other}"), clock))
        assert status == 200, answer
        await until(banned(js, other))
    assert "Cooled" not in await kinds(js, cooled)
    [(letter, reason)] = await stored_dead_letters(js, f"dlq.chip.{cooled}")
    assert letter == body and reason.startswith("invalid command") and "$.until" in reason


async def test_a_stored_v1_cooled_without_a_zone_is_read_as_utc_by_every_reader(
        nc: NATS, js: JetStreamContext, nats_url: str, database_url: str) -> None:
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)
    cooled, other = new_chip_id(), new_chip_id()
    rest_until = clock.now() + timedelta(hours=2)
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), [cooled, other])
    await store_old_cooled(js, cooled, clock, naive(rest_until))
    await migrate_url(database_url)
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    api, port = await start_http(create_app(Config(nats_url=nats_url, database_url=database_url),
                                            clock, nc=nc), 0)
    try:
        async with running_worker(nc, clock), monitoring(nc, clock) as monitor:
            assert (await events_of(js, cooled))[-1] == ev.Cooled(
                event_id=f"{cooled}:old-cool:0", chip_id=cooled, command_id="old-cool",
                occurred_at=clock.now(), reason="r", until=rest_until,
                previous_status=ev.Status.WARMING)
            assert monitor.chips[cooled].chip.cooling_until == rest_until
            base = f"http://127.0.0.1:{port}/chips/{cooled}"
            [stored] = [i for i in (await _get(base + "/events"))["items"]
                        if i["type"] == "Cooled"]
            assert datetime.fromisoformat(stored["event"]["until"]) == rest_until
            await until(lambda: _projected_cooling(base), timeout=20)
            assert datetime.fromisoformat((await _get(base))["cooling_until"]) == rest_until

            await publish_observation(gateway, connection(f"inst-{other}", "close", 403, clock))
            await until(banned(js, other))  # the monitor works for the fleet
            clock.set(rest_until + timedelta(seconds=1))
            await publish_observation(gateway, connection(f"inst-{cooled}", "open", 200, clock))
            await until(lambda: _resumed(js, cooled))  # rested by the UTC reading of `until`
    finally:
        await api.cleanup()
        await projections.stop()


async def test_a_received_at_stamp_without_a_zone_is_not_taken_for_the_receipt_time(
        nc: NATS, js: JetStreamContext) -> None:
    """Only our edge stamps `Julia-Received-At`, with a zone; a body stored by anyone else
    with a naive stamp is dated by JetStream instead (the deriver's fallback)."""
    instance = "inst-" + new_chip_id()
    async with deriving(nc):
        ack = await js.publish(gateway_raw("evolution", instance), close_403(instance),
                               headers={JuliaHeader.RECEIVED_AT: naive(MORNING)})
        await until_derived(js)
    raw = await js.get_msg(Stream.GATEWAY_IN, ack.seq)
    stored = await js.get_last_msg(Stream.GATEWAY_OBS, f"gw.obs.{instance}")
    observed = decode_observation(stored.data or b"")
    assert isinstance(observed, ConnectionUpdate)
    assert raw.time is not None and observed.observed_at.tzinfo is not None
    assert abs(observed.observed_at - raw.time) < timedelta(milliseconds=1)  # ns rounding


async def _get(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _projected_cooling(url: str) -> bool:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status == 200 and (await resp.json())["cooling_until"] is not None


async def _resumed(js: JetStreamContext, chip: str) -> bool:
    return "Resumed" in await kinds(js, chip)


async def _known(monitor: Any, chips: list[str]) -> bool:
    return all(c in monitor.chips for c in chips)
