"""Webhook ingress over real HTTP and JetStream: secrets, bad bodies, outages, durability.

The 200 means the raw body is in GATEWAY_IN; its observation reaches GATEWAY_OBS a moment later
through the observation deriver, so the tests that read GATEWAY_OBS wait for it (bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.clock import Clock
from julia_chips.contract.observations import Observation, SmsReceived
from julia_chips.contract.subjects import Stream
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.ingest.deriver import ObservationDeriver
from julia_chips.ingest.observation_log import decode_observation
from julia_chips.ingest.outcomes import Ignored
from tests.integration.ingress_fixtures import (
    FAST_DERIVER,
    SALVY_SECRET,
    Ingress,
    deriving,
    ingress,
    ingress_only,
    stamped,
    until_derived,
    until_stored,
)

__all__ = ["ingress", "ingress_only"]

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fresh(name: str, clock: Clock) -> bytes:
    """A captured Evolution body, as if sent now by `clock`."""
    return stamped(fixture(name), clock)


async def count(js: JetStreamContext, stream: Stream) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def last_observed(js: JetStreamContext, subject: str, timeout: float = 5.0
                        ) -> Observation:
    """The subject's last observation, waiting for the deriver to store one."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return decode_observation((await js.get_last_msg(Stream.GATEWAY_OBS,
                                                                 subject)).data)
            except NotFoundError:
                await asyncio.sleep(0.01)


def facts(paths: list[Path]) -> int:
    """How many of these bodies carry an observation (the rest are ignored on purpose)."""
    now = datetime.now(UTC)
    decoded = [decode_evolution(p.read_bytes(), received_at=now) if "evolution" in p.name
               else decode_salvy(p.read_bytes()) for p in paths]
    return sum(not isinstance(d, Ignored) for d in decoded)


async def test_bad_or_missing_secret_is_401_and_nothing_stored(
        ingress: Ingress, js: JetStreamContext) -> None:
    body = fresh("evolution_connection_open.json", ingress.clock)
    assert (await ingress.evolution(body, secret="wrong"))[0] == 401
    assert (await ingress.evolution(body, secret=None))[0] == 401
    assert (await ingress.salvy(fixture("salvy_sms_received_v3.json"),
                                secret=SALVY_SECRET[:-4] + "AAA="))[0] == 401
    assert await count(js, Stream.GATEWAY_IN) == 0


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "malformed"),
    (b'{"event": "connection.update", "instance": "chip-1", "data": {"state": 3}}', "$.data"),
    (b'{"event": "messages.upsert"}', "instance"),
    (b'{"event": "connection.update", "instance": "a.b", '
     b'"data": {"instance": "a.b", "state": "open"}}', "subject token"),
    (b'{"event": "messages.upsert", "instance": "chip-1", "data": {"key": {"remoteJid": '
     b'"5511999990000@s.whatsapp.net", "fromMe": false, "id": "M1"}, '
     b'"messageTimestamp": 99999999999999999999}}', "$.data.messageTimestamp"),
])
async def test_malformed_evolution_body_is_400_with_reason_and_nothing_stored(
        ingress: Ingress, js: JetStreamContext, body: bytes, field: str) -> None:
    if body.startswith(b'{"'):  # fresh, or the replay window would refuse it first
        body = stamped(body, ingress.clock)
    status, answer = await ingress.evolution(body)
    assert status == 400
    assert field.lower() in str(answer["error"]).lower()
    assert await count(js, Stream.GATEWAY_IN) == 0
    assert await count(js, Stream.GATEWAY_OBS) == 0


async def test_malformed_salvy_body_is_400(ingress: Ingress, js: JetStreamContext) -> None:
    body = b'{"type": "sms.received", "data": {"id": "sms_1"}}'
    status, answer = await ingress.salvy(body)
    assert status == 400 and "receivedAt" in str(answer["error"])
    assert await count(js, Stream.GATEWAY_IN) == 0


async def test_every_accepted_payload_is_in_gateway_in_and_parsed(
        ingress: Ingress, js: JetStreamContext) -> None:
    evolution = sorted(FIXTURES.glob("evolution_*.json"))
    for path in evolution:
        body = stamped(path.read_bytes(), ingress.clock)
        status, answer = await ingress.evolution(body)
        assert status == 200, (path.name, answer)
        instance = json.loads(body)["instance"]
        stored = await js.get_msg(Stream.GATEWAY_IN, int(str(answer["seq"])))
        assert stored.subject == f"gw.in.evolution.{instance}"
        assert stored.data == body  # raw, byte for byte
    salvy = sorted(FIXTURES.glob("salvy_*.json"))
    for path in salvy:
        status, answer = await ingress.salvy(path.read_bytes())
        assert status == 200, (path.name, answer)
    assert await count(js, Stream.GATEWAY_IN) == len(evolution) + len(salvy)

    await until_stored(js, Stream.GATEWAY_OBS, facts(evolution + salvy))
    await until_derived(js)
    assert await count(js, Stream.GATEWAY_OBS) == facts(evolution + salvy)  # one each
    seen = await last_observed(js, "gw.obs.chip-0001")
    assert not isinstance(seen, SmsReceived) and seen.instance == "chip-0001"
    sms = await last_observed(js, "gw.sms.pa_01JDQ6ZK2M")
    assert isinstance(sms, SmsReceived)


async def test_observation_matches_the_decoder(ingress: Ingress, js: JetStreamContext) -> None:
    body = fresh("evolution_connection_close_403.json", ingress.clock)
    assert (await ingress.evolution(body))[0] == 200
    instance = json.loads(body)["instance"]
    stored = await last_observed(js, f"gw.obs.{instance}")
    expected = decode_evolution(body, received_at=stored.observed_at)  # type: ignore[union-attr]
    assert stored == expected


async def test_observation_is_dated_by_the_ingress_not_the_deriver(
        ingress_only: Ingress, nc: NATS, js: JetStreamContext) -> None:
    """Stored while no deriver runs, derived later: dated when the ingress took it in."""
    await ObservationDeriver(nc, FAST_DERIVER).prepare()  # the durable exists, nobody reads
    before = datetime.now(UTC)
    assert (await ingress_only.evolution(fresh("evolution_connection_open.json", ingress_only.clock)))[0] == 200
    after = datetime.now(UTC)
    await asyncio.sleep(0.3)
    async with deriving(nc):
        stored = await last_observed(js, "gw.obs.chip-0001")
    assert before <= stored.observed_at <= after  # type: ignore[union-attr]


async def test_ignored_events_are_stored_raw_but_not_published(
        ingress: Ingress, js: JetStreamContext) -> None:
    assert (await ingress.evolution(fresh("evolution_qrcode_updated.json", ingress.clock)))[0] == 200
    assert (await ingress.salvy(fixture("salvy_other_event.json")))[0] == 200
    assert await count(js, Stream.GATEWAY_IN) == 2
    await until_derived(js)
    assert await count(js, Stream.GATEWAY_OBS) == 0
    stored = await js.get_last_msg(Stream.GATEWAY_IN, "gw.in.salvy.none")  # names no account
    assert stored.data == fixture("salvy_other_event.json")


async def test_a_retried_delivery_is_stored_once(ingress: Ingress, js: JetStreamContext) -> None:
    body = fixture("salvy_sms_received_v3.json")
    assert (await ingress.salvy(body, msg_id="msg_same"))[0] == 200
    assert (await ingress.salvy(body, msg_id="msg_same"))[0] == 200
    evo = fresh("evolution_messages_upsert.json", ingress.clock)
    assert (await ingress.evolution(evo))[0] == 200
    assert (await ingress.evolution(evo))[0] == 200
    assert await count(js, Stream.GATEWAY_IN) == 2
    await until_derived(js)
    assert await count(js, Stream.GATEWAY_OBS) == 2


async def test_oversized_body_is_413(ingress: Ingress, js: JetStreamContext) -> None:
    status, _ = await ingress.evolution(b" " * (300 * 1024))
    assert status == 413
    assert await count(js, Stream.GATEWAY_IN) == 0


@pytest.mark.own_nats_server
async def test_nats_unavailable_is_503_so_the_sender_retries(
        ingress: Ingress, nats_server: EmbeddedNats | None, nc: NATS) -> None:
    assert nats_server is not None  # own_nats_server: always one we may kill
    nats_server.kill()
    status, answer = await ingress.evolution(fresh("evolution_connection_open.json", ingress.clock))
    assert status == 503, answer
    status, _ = await ingress.salvy(fixture("salvy_sms_received_v3.json"))
    assert status == 503
    with contextlib.suppress(Exception):
        await nc.close()  # while the server is gone; the fixture's close is then a no-op
