"""Webhook ingress over real HTTP and JetStream: secrets, bad bodies, outages, durability."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.events.observations import SmsReceived
from julia_chips.gateways.evolution_webhook import decode_evolution
from julia_chips.store.observation_log import decode_observation
from julia_chips.subjects import Stream
from tests.integration.ingress_fixtures import SALVY_SECRET, Ingress, ingress

__all__ = ["ingress"]

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def count(js: JetStreamContext, stream: Stream) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def test_bad_or_missing_secret_is_401_and_nothing_stored(
        ingress: Ingress, js: JetStreamContext) -> None:
    body = fixture("evolution_connection_open.json")
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
])
async def test_malformed_evolution_body_is_400_with_reason_and_nothing_stored(
        ingress: Ingress, js: JetStreamContext, body: bytes, field: str) -> None:
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
        status, answer = await ingress.evolution(path.read_bytes())
        assert status == 200, (path.name, answer)
        instance = json.loads(path.read_bytes())["instance"]
        stored = await js.get_msg(Stream.GATEWAY_IN, int(str(answer["seq"])))
        assert stored.subject == f"gw.in.evolution.{instance}"
        assert stored.data == path.read_bytes()  # raw, byte for byte
    salvy = sorted(FIXTURES.glob("salvy_*.json"))
    for path in salvy:
        status, answer = await ingress.salvy(path.read_bytes())
        assert status == 200, (path.name, answer)
    assert await count(js, Stream.GATEWAY_IN) == len(evolution) + len(salvy)

    opened = await js.get_last_msg(Stream.GATEWAY_OBS, "gw.obs.chip-0001")
    seen = decode_observation(opened.data)
    assert not isinstance(seen, SmsReceived) and seen.instance == "chip-0001"
    sms_msg = await js.get_last_msg(Stream.GATEWAY_OBS, "gw.sms.pa_01JDQ6ZK2M")
    sms = decode_observation(sms_msg.data)
    assert isinstance(sms, SmsReceived)


async def test_observation_matches_the_decoder(ingress: Ingress, js: JetStreamContext) -> None:
    body = fixture("evolution_connection_close_403.json")
    assert (await ingress.evolution(body))[0] == 200
    instance = json.loads(body)["instance"]
    stored = decode_observation((await js.get_last_msg(Stream.GATEWAY_OBS,
                                                       f"gw.obs.{instance}")).data)
    expected = decode_evolution(body, received_at=stored.observed_at)  # type: ignore[union-attr]
    assert stored == expected


async def test_ignored_events_are_stored_raw_but_not_published(
        ingress: Ingress, js: JetStreamContext) -> None:
    assert (await ingress.evolution(fixture("evolution_qrcode_updated.json")))[0] == 200
    assert (await ingress.salvy(fixture("salvy_other_event.json")))[0] == 200
    assert await count(js, Stream.GATEWAY_IN) == 2
    assert await count(js, Stream.GATEWAY_OBS) == 0
    stored = await js.get_last_msg(Stream.GATEWAY_IN, "gw.in.salvy.none")  # names no account
    assert stored.data == fixture("salvy_other_event.json")


async def test_a_retried_delivery_is_stored_once(ingress: Ingress, js: JetStreamContext) -> None:
    body = fixture("salvy_sms_received_v3.json")
    assert (await ingress.salvy(body, msg_id="msg_same"))[0] == 200
    assert (await ingress.salvy(body, msg_id="msg_same"))[0] == 200
    evo = fixture("evolution_messages_upsert.json")
    assert (await ingress.evolution(evo))[0] == 200
    assert (await ingress.evolution(evo))[0] == 200
    assert await count(js, Stream.GATEWAY_IN) == 2
    assert await count(js, Stream.GATEWAY_OBS) == 2


async def test_oversized_body_is_413(ingress: Ingress, js: JetStreamContext) -> None:
    status, _ = await ingress.evolution(b" " * (300 * 1024))
    assert status == 413
    assert await count(js, Stream.GATEWAY_IN) == 0


async def test_nats_unavailable_is_503_so_the_sender_retries(
        ingress: Ingress, nats_server: EmbeddedNats | None, nc: NATS) -> None:
    if nats_server is None:
        pytest.skip("needs the embedded nats-server to stop it")
    nats_server.kill()
    status, answer = await ingress.evolution(fixture("evolution_connection_open.json"))
    assert status == 503, answer
    status, _ = await ingress.salvy(fixture("salvy_sms_received_v3.json"))
    assert status == 503
    with contextlib.suppress(Exception):
        await nc.close()  # while the server is gone; the fixture's close is then a no-op
