"""The Evolution adapter against the sandbox, over real HTTP, webhooks included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from julia_chips.contract.observations import ConnectionUpdate, InboundMessage, MessageStatus
from julia_chips.gateways.backoff import Backoff
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.errors import (
    GatewayError,
    GatewayUnavailable,
    InstanceMissing,
    InstanceNameTaken,
    InstanceNotConnected,
    LinkFailed,
    NumberNotOnWhatsApp,
    RateLimited,
    SendOutcomeUnknown,
    Unauthorized,
)
from julia_chips.gateways.evolution.instance_secret import instance_secret
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.gateways.evolution.wire import InstanceSpec, WebhookTarget
from julia_chips.ingest.outcomes import EvolutionObservation
from julia_chips.sandbox.world import Sandbox, start_sandbox
from tests.integration.ingress_fixtures import named_instance
from tests.integration.sandbox_fixtures import Receiver, SleepRecorder, receiver

__all__ = ["receiver"]  # the fixture, re-exported for pytest

SECRET = "s3cret-master-value"
NUMBER = "+5511988887777"


@pytest.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[Sandbox]:
    """Depends on the receiver so it stops first: no webhook is posted into a closed port."""
    world = await start_sandbox(doctors=10, hosts=0, pace=0.01, link_delay=0.02, seed=11)
    yield world
    await world.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(sandbox: Sandbox, http: aiohttp.ClientSession, sleeps: SleepRecorder) -> EvolutionClient:
    return EvolutionClient(
        http, sandbox.evolution_url, sandbox.evolution_api_key, timeout=5, sleep=sleeps,
        backoff=Backoff(attempts=3, base_delay=0.1),
    )  # fmt: skip


def spec(receiver: Receiver, name: str = "chip-0001") -> InstanceSpec:
    return InstanceSpec(name=name, webhook=WebhookTarget(url=receiver.url, master_secret=SECRET))


async def observe(receiver: Receiver) -> EvolutionObservation:
    """Next webhook, checked for our secret header and decoded as production would."""
    headers, body = await receiver.next()
    assert headers["x-julia-secret"] == instance_secret(SECRET, named_instance(body))
    return decode_evolution(body, received_at=datetime.now(UTC))


async def linked(client: EvolutionClient, receiver: Receiver, name: str = "chip-0001") -> None:
    await client.create_instance(spec(receiver, name))
    await client.connect(name, number=NUMBER)
    assert (await observe(receiver)).state == "connecting"  # type: ignore[union-attr]
    assert (await observe(receiver)).state == "open"  # type: ignore[union-attr]


async def test_create_instance(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    created = await client.create_instance(spec(receiver))
    assert created.name == "chip-0001"
    assert created.status == "connecting"
    assert created.token == sandbox.evolution.instances["chip-0001"].token
    # The instance's own secret, not the master: it speaks for this instance alone.
    assert sandbox.evolution.instances["chip-0001"].webhook_headers == {
        "x-julia-secret": instance_secret(SECRET, "chip-0001")}
    assert sandbox.evolution.instances["chip-0001"].integration == "WHATSAPP-BAILEYS"


async def test_create_taken_name(client: EvolutionClient, receiver: Receiver) -> None:
    await client.create_instance(spec(receiver))
    with pytest.raises(InstanceNameTaken, match="already in use") as caught:
        await client.create_instance(spec(receiver))
    assert caught.value.status == 403


async def test_wrong_api_key(
    sandbox: Sandbox, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    intruder = EvolutionClient(http, sandbox.evolution_url, "wrong-key")
    with pytest.raises(Unauthorized):
        await intruder.create_instance(spec(receiver))


async def test_unknown_instance(client: EvolutionClient) -> None:
    with pytest.raises(InstanceMissing, match="does not exist"):
        await client.connection_state("nobody")


async def test_connect_with_pairing_code_then_open(
    client: EvolutionClient, receiver: Receiver
) -> None:
    await client.create_instance(spec(receiver))
    code = await client.connect("chip-0001", number=NUMBER)
    assert code.already_open is False
    assert code.pairing_code is not None and len(code.pairing_code) == 8
    assert code.qr_code is not None and code.qr_code.startswith("2@")
    first, second = await observe(receiver), await observe(receiver)
    assert isinstance(first, ConnectionUpdate) and first.state == "connecting"
    assert isinstance(second, ConnectionUpdate) and second.state == "open"
    assert await client.connection_state("chip-0001") == "open"
    assert (await client.connect("chip-0001")).already_open is True


async def test_connect_error_in_http_200_body(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    await client.create_instance(spec(receiver))
    sandbox.evolution.fail_connect("chip-0001", "Error: Connection Failure")
    with pytest.raises(LinkFailed, match="Connection Failure") as caught:
        await client.connect("chip-0001")
    assert caught.value.status == 200


async def test_restart(client: EvolutionClient, receiver: Receiver) -> None:
    await client.create_instance(spec(receiver))
    with pytest.raises(LinkFailed, match="not connected"):
        await client.restart("chip-0001")
    await client.connect("chip-0001")
    await observe(receiver)
    await observe(receiver)
    assert (await client.restart("chip-0001")).already_open is True
    states = [(await observe(receiver)).state for _ in range(2)]  # type: ignore[union-attr]
    assert states == ["connecting", "open"]


async def test_logout_then_logout_again(client: EvolutionClient, receiver: Receiver) -> None:
    await linked(client, receiver)
    await client.logout("chip-0001")
    closed = await observe(receiver)
    assert isinstance(closed, ConnectionUpdate)
    assert (closed.state, closed.status_reason) == ("close", 401)
    assert await client.connection_state("chip-0001") == "close"
    with pytest.raises(InstanceNotConnected):
        await client.logout("chip-0001")


async def test_delete(client: EvolutionClient, receiver: Receiver) -> None:
    await client.create_instance(spec(receiver))
    await client.delete("chip-0001")
    with pytest.raises(InstanceMissing):
        await client.connection_state("chip-0001")


async def test_send_text_and_receipts(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    await linked(client, receiver)
    doctor = sandbox.doctors.doctors[0]
    sandbox.doctors.opt_out(doctor.phone)  # reads for sure, then answers PARAR
    sent = await client.send_text("chip-0001", doctor.phone, "Olá, temos um plantão sábado.")
    assert sent.remote_phone == doctor.phone
    assert sent.status == "PENDING"
    server, delivered, read, reply = [await observe(receiver) for _ in range(4)]
    assert isinstance(server, MessageStatus) and server.status == "SERVER_ACK"
    assert server.message_id == sent.message_id
    assert delivered == MessageStatus(
        instance="chip-0001", message_id=sent.message_id, remote_phone=doctor.phone,
        status="DELIVERY_ACK", observed_at=delivered.observed_at,  # type: ignore[union-attr]
    )  # fmt: skip
    assert isinstance(read, MessageStatus) and read.status == "READ"
    assert isinstance(reply, InboundMessage)
    assert (reply.from_phone, reply.text) == (doctor.phone, "PARAR")
    assert doctor.phone in sandbox.doctors.opted_out


async def test_send_to_number_not_on_whatsapp(client: EvolutionClient, receiver: Receiver) -> None:
    await linked(client, receiver)
    with pytest.raises(NumberNotOnWhatsApp) as caught:
        await client.send_text("chip-0001", "+5511900001234", "Olá")
    assert "5511900001234" not in str(caught.value)  # LGPD: masked
    assert "34" in str(caught.value)


async def test_send_rate_limited(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    await linked(client, receiver)
    sandbox.evolution.rate_limit("chip-0001", sends=1)
    with pytest.raises(RateLimited):
        await client.send_text("chip-0001", sandbox.doctors.doctors[1].phone, "Olá")


async def test_send_on_closed_socket(client: EvolutionClient, receiver: Receiver) -> None:
    await client.create_instance(spec(receiver))
    with pytest.raises(GatewayError, match="Connection Closed") as caught:
        await client.send_text("chip-0001", "+5511900001234", "Olá")
    assert caught.value.status == 400


async def test_state_retries_through_an_outage(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver, sleeps: SleepRecorder
) -> None:
    await client.create_instance(spec(receiver))
    sandbox.evolution.outage(2)
    assert await client.connection_state("chip-0001") == "close"
    assert sleeps.delays == [0.1, 0.2]


async def test_send_is_never_retried(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver, sleeps: SleepRecorder
) -> None:
    await linked(client, receiver)
    sandbox.evolution.outage(2)
    with pytest.raises(SendOutcomeUnknown):
        await client.send_text("chip-0001", sandbox.doctors.doctors[2].phone, "Olá")
    assert sandbox.evolution.outage_requests == 1  # exactly one attempt reached the gateway
    assert sleeps.delays == []


async def test_unreachable_gateway(http: aiohttp.ClientSession, sleeps: SleepRecorder) -> None:
    dead = EvolutionClient(http, "http://127.0.0.1:9", "k", sleep=sleeps,
                           backoff=Backoff(attempts=2, base_delay=0.1))  # fmt: skip
    with pytest.raises(GatewayUnavailable) as caught:
        await dead.connect("chip-0001")
    assert caught.value.request_sent is False
    assert sleeps.delays == [0.1]


@pytest.mark.parametrize(("code", "states"), [(401, ["close"]), (515, ["connecting", "open"])])
async def test_disconnect_codes(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver, code: int, states: list[str]
) -> None:
    await linked(client, receiver)
    sandbox.evolution.disconnect("chip-0001", code)
    seen = [await observe(receiver) for _ in states]
    assert [s.state for s in seen] == states  # type: ignore[union-attr]


async def test_ban_closes_with_403_and_never_relinks(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    await linked(client, receiver)
    sandbox.evolution.ban("chip-0001")
    banned = await observe(receiver)
    assert isinstance(banned, ConnectionUpdate)
    assert (banned.state, banned.status_reason) == ("close", 403)
    await client.connect("chip-0001", number=NUMBER)
    await observe(receiver)  # connecting
    await sandbox.poster.drain()
    assert await client.connection_state("chip-0001") == "connecting"


async def test_balancer_sender_tells_refused_from_sent(
    client: EvolutionClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    """The balancer's port over this client: a send the gateway refuses is a refusal (safe
    to report as failed), never an unknown outcome; a real send returns its message id."""
    from julia_chips.balancer.dispatch import EvolutionSender, SendRefused

    await linked(client, receiver)
    sender = EvolutionSender(client)
    with pytest.raises(SendRefused, match="NumberNotOnWhatsApp"):
        await sender.send_text("chip-0001", "+5511900000000", "Olá")
    with pytest.raises(SendRefused, match="InstanceMissing"):
        await sender.send_text("chip-9999", sandbox.doctors.doctors[0].phone, "Olá")
    message_id = await sender.send_text("chip-0001", sandbox.doctors.doctors[0].phone, "Olá")
    assert message_id and message_id.isascii()
