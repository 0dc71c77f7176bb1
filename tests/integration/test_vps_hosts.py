"""The VPS client against sandbox hosts: real SSH on loopback, pinned host keys, key auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncssh
import msgspec
import pytest

from julia_chips.activation.wiring import endpoints_from_config
from julia_chips.config import ConfigError, load_config
from julia_chips.contract.observations import SmsReceived
from julia_chips.gateways.salvy.client import SalvyClient
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.gateways.vps.client import (
    HostCommandFailed,
    HostCommands,
    HostUnreachable,
    NoHostCapacity,
    VpsClient,
)
from julia_chips.gateways.vps.hosts import HostRegistry, VpsHost
from julia_chips.sandbox.vps_host import SandboxVpsHost
from julia_chips.sandbox.world import start_sandbox
from tests.integration.sandbox_fixtures import Receiver, receiver

__all__ = ["receiver"]  # the fixture, re-exported for pytest

NUMBER = "+5511987654321"


@pytest.fixture(scope="module")
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
async def hosts(client_key: asyncssh.SSHKey) -> AsyncIterator[list[SandboxVpsHost]]:
    started = [
        SandboxVpsHost("vps-1", client_key=client_key, capacity=4, used_slots=3),
        SandboxVpsHost("vps-2", client_key=client_key, capacity=4, used_slots=1),
    ]
    for host in started:
        await host.start()
    yield started
    for host in started:
        await host.kill()


@pytest.fixture
def vps(client_key: asyncssh.SSHKey) -> VpsClient:
    return VpsClient(client_keys=[client_key], connect_timeout=2, command_timeout=1)


def entries(hosts: list[SandboxVpsHost]) -> list[VpsHost]:
    return [host.registry_entry() for host in hosts]


async def test_health(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    health = await vps.health(hosts[0].registry_entry())
    assert (health.reachable, health.gateway_up, health.used_slots) == (True, True, 3)
    assert health.free_slots == 1
    assert health.error is None


async def test_gateway_down(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    hosts[0].gateway_up = False
    health = await vps.health(hosts[0].registry_entry())
    assert (health.reachable, health.gateway_up, health.free_slots) == (True, False, 0)
    assert health.error == "gateway service down"


async def test_dead_host(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    entry = hosts[0].registry_entry()
    await hosts[0].kill()
    health = await vps.health(entry)
    assert (health.reachable, health.free_slots) == (False, 0)
    assert health.error is not None and "vps-1" in health.error
    with pytest.raises(HostUnreachable):
        await vps.register(entry, NUMBER, "123456")


async def test_slow_host_times_out(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    hosts[1].delay = 1.5
    health = await vps.health(hosts[1].registry_entry())
    assert (health.reachable, health.gateway_up) == (True, False)
    assert health.error is not None and "timed out" in health.error


async def test_wrong_host_key_is_refused(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    impostor_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    entry = msgspec.structs.replace(hosts[0].registry_entry(), host_key=impostor_key)
    with pytest.raises(HostUnreachable, match="vps-1"):
        await vps.request_code(entry, NUMBER)


async def test_unknown_client_key_is_refused(hosts: list[SandboxVpsHost]) -> None:
    stranger = VpsClient(client_keys=[asyncssh.generate_private_key("ssh-ed25519")])
    with pytest.raises(HostUnreachable, match="PermissionDenied"):
        await stranger.request_code(hosts[0].registry_entry(), NUMBER)


async def test_pick_host_prefers_most_free_slots(
    vps: VpsClient, hosts: list[SandboxVpsHost]
) -> None:
    assert (await vps.pick_host(entries(hosts))).name == "vps-2"
    hosts[1].gateway_up = False
    assert (await vps.pick_host(entries(hosts))).name == "vps-1"


async def test_no_capacity(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    hosts[0].used_slots, hosts[1].used_slots = 4, 9
    with pytest.raises(NoHostCapacity, match="2 host"):
        await vps.pick_host(entries(hosts))


async def test_request_code_then_register(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    entry = hosts[1].registry_entry()
    assert (await vps.request_code(entry, NUMBER)).requested is True
    code = hosts[1].codes["5511987654321"]
    wrong = await vps.register(entry, NUMBER, "000000" if code != "000000" else "111111")
    assert (wrong.registered, wrong.reason) == (False, "invalid code")
    done = await vps.register(entry, NUMBER, code)
    assert (done.registered, done.instance) == (True, "wa-5511987654321")
    assert hosts[1].used_slots == 2


async def test_unknown_command_fails_clearly(
    client_key: asyncssh.SSHKey, hosts: list[SandboxVpsHost]
) -> None:
    vps = VpsClient(client_keys=[client_key], commands=HostCommands(register="no-such-tool"))
    with pytest.raises(HostCommandFailed, match="exited 127"):
        await vps.register(hosts[0].registry_entry(), NUMBER, "123456")


async def test_arguments_are_validated(vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    entry = hosts[0].registry_entry()
    with pytest.raises(ValueError, match="six digits"):
        await vps.register(entry, NUMBER, "12345; rm -rf /")
    with pytest.raises(ValueError, match="10 to 15"):
        await vps.request_code(entry, "123")


def test_registry_from_json() -> None:
    registry = HostRegistry.from_json(
        b'[{"name": "a", "address": "10.0.0.1", "capacity": 5, "labels": ["sp"]},'
        b' {"name": "b", "address": "10.0.0.2", "port": 2222, "capacity": 3}]'
    )
    assert len(registry) == 2
    assert registry.get("b").port == 2222
    assert [h.name for h in registry.labelled(frozenset({"sp"}))] == ["a"]


def test_registry_rejects_bad_entries() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\[0\]\.capacity"):
        HostRegistry.from_json(b'[{"name": "a", "address": "x", "capacity": "many"}]')
    host = VpsHost(name="a", address="x", capacity=1)
    with pytest.raises(ValueError, match="twice"):
        HostRegistry([host, host])


async def test_activation_path_end_to_end(receiver: Receiver) -> None:
    """Buy a number, ask WhatsApp for a code, read it off the SMS webhook, register."""
    world = await start_sandbox(doctors=0, hosts=1, seed=9, salvy_webhook_url=receiver.url)
    try:
        async with aiohttp.ClientSession() as session:
            salvy = SalvyClient(session, world.salvy_url, world.salvy_token)
            account = await salvy.create_mobile_did(11, idempotency_key="prov-e2e")
        vps = VpsClient(client_keys=[world.vps_client_key])
        host = await vps.pick_host(world.vps_hosts)
        assert (await vps.request_code(host, account.phone_number)).requested
        _headers, body = await receiver.next()
        sms = decode_salvy(body)
        assert isinstance(sms, SmsReceived) and sms.code is not None
        done = await vps.register(host, account.phone_number, sms.code)
        assert done.registered is True
    finally:
        await world.close()


async def test_a_host_with_no_pinned_key_and_no_known_hosts_entry_is_never_connected(
        vps: VpsClient, hosts: list[SandboxVpsHost]) -> None:
    """asyncssh with `known_hosts=None` checks nothing: whoever answered got the numbers."""
    unpinned = msgspec.structs.replace(hosts[0].registry_entry(), host_key=None)
    health = await vps.health(unpinned)
    assert not health.reachable
    assert health.error is not None and "no pinned host_key" in health.error
    with pytest.raises(HostUnreachable, match="vps-1"):
        await vps.request_code(unpinned, NUMBER)


def outside_env(tmp_path: Path, hosts: list[VpsHost]) -> dict[str, str]:
    """Everything the activator needs from the environment, with `hosts` as the host list."""
    (tmp_path / "hosts.json").write_bytes(msgspec.json.encode(hosts))
    names = ["SALVY_API_URL", "SALVY_API_TOKEN", "EVOLUTION_API_URL", "EVOLUTION_API_KEY",
             "VPS_SSH_KEY", "JULIA_WEBHOOK_SECRET", "CLOUD_API_URL", "CLOUD_API_TOKEN",
             "CLOUD_API_WABA_ID", "CLOUD_API_PIN", "JULIA_PUBLIC_URL", "JULIA_PHONE_KEY"]
    return {name: f"https://{name.lower()}.example" for name in names} | {
        "VPS_HOSTS_FILE": str(tmp_path / "hosts.json")}


async def test_start_up_refuses_a_host_whose_key_it_cannot_check(
        hosts: list[SandboxVpsHost], client_key: asyncssh.SSHKey, tmp_path: Path) -> None:
    pinned, listed = hosts[0].registry_entry(), hosts[1].registry_entry()
    unpinned = msgspec.structs.replace(listed, host_key=None)
    env = outside_env(tmp_path, [pinned, unpinned])
    with pytest.raises(ConfigError, match=r"'vps-2'.*VPS_KNOWN_HOSTS"):
        endpoints_from_config(load_config(env))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{listed.address}]:{listed.port} {listed.host_key}\n")
    endpoints = endpoints_from_config(load_config(env | {"VPS_KNOWN_HOSTS": str(known_hosts)}))
    vps = VpsClient(client_keys=[client_key], known_hosts=endpoints.known_hosts,
                    connect_timeout=2, command_timeout=1)
    assert [h.reachable for h in await vps.survey(endpoints.hosts)] == [True, True]


def test_a_pinned_key_that_is_no_public_key_stops_start_up(tmp_path: Path) -> None:
    garbled = VpsHost(name="vps-9", address="10.0.0.9", capacity=1, host_key="ssh-ed25519 AAAA")
    with pytest.raises(ConfigError, match="'vps-9': host_key is not an OpenSSH public key"):
        endpoints_from_config(load_config(outside_env(tmp_path, [garbled])))
