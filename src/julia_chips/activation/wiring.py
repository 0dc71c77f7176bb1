"""Wire the activator to real endpoints or to the sandbox, and run it under its lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client as NATS

from julia_chips.activation.activator import DEFAULT_SETTINGS, Activator, ActivatorSettings
from julia_chips.activation.effects import ActivationPorts
from julia_chips.chip.client import ChipClient
from julia_chips.clock import Clock
from julia_chips.config import Config, ConfigError
from julia_chips.contract.subjects import ACTIVATOR_LEASE
from julia_chips.gateways.cloud_api.client import CloudApiClient
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.wire import WebhookTarget
from julia_chips.gateways.registrars import CloudApiRegistrar, VpsRegistrar
from julia_chips.gateways.salvy.client import SalvyClient
from julia_chips.gateways.vps.client import VpsClient
from julia_chips.gateways.vps.host_keys import HostKeyUnknown, check_host_keys
from julia_chips.gateways.vps.hosts import HostRegistry, VpsHost
from julia_chips.jetstream.part_lease import part_lease, run_while_holding
from julia_chips.sandbox.world import CLOUD_API_PIN, Sandbox

log = logging.getLogger(__name__)


class ActivatorEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """Where the activator's outside world is. Secrets are held, never logged."""

    salvy_url: str
    salvy_token: str
    evolution_url: str  # one gateway for every host (per-host gateways: `evolution_urls`)
    evolution_api_key: str
    cloud_api_url: str
    cloud_api_token: str
    cloud_api_waba_id: str
    cloud_api_pin: str
    hosts: list[VpsHost]
    ssh_keys: list[Any]  # asyncssh keys or key file paths
    webhook_url: str  # our public /webhooks/evolution, set on each instance
    webhook_secret: str  # the master each instance's x-julia-secret is derived from
    evolution_urls: dict[str, str] = {}  # host name -> its own gateway, when they differ
    known_hosts: Path | None = None  # for hosts without a pinned host_key


def endpoints_from_sandbox(sandbox: Sandbox, *, webhook_url: str, webhook_secret: str,
                           pin: str = CLOUD_API_PIN) -> ActivatorEndpoints:
    assert sandbox.cloud_api is not None
    return ActivatorEndpoints(
        salvy_url=sandbox.salvy_url, salvy_token=sandbox.salvy_token,
        evolution_url=sandbox.evolution_url, evolution_api_key=sandbox.evolution_api_key,
        cloud_api_url=sandbox.cloud_api_url, cloud_api_token=sandbox.cloud_api.token,
        cloud_api_waba_id=sandbox.cloud_api.waba_id, cloud_api_pin=pin,
        hosts=sandbox.vps_hosts, ssh_keys=[sandbox.vps_client_key],
        webhook_url=webhook_url, webhook_secret=webhook_secret)


def endpoints_from_config(config: Config) -> ActivatorEndpoints:
    """The real services, from Config.

    :raises ConfigError: naming the first variable the activator needs and lacks.
    """
    required = {
        "SALVY_API_URL": config.salvy_api_url, "SALVY_API_TOKEN": config.salvy_api_token,
        "EVOLUTION_API_URL": config.evolution_api_url,
        "EVOLUTION_API_KEY": config.evolution_api_key, "VPS_SSH_KEY": config.vps_ssh_key,
        "VPS_HOSTS_FILE": config.vps_hosts_file, "JULIA_WEBHOOK_SECRET": config.webhook_secret,
        "CLOUD_API_URL": config.cloud_api_url, "CLOUD_API_TOKEN": config.cloud_api_token,
        "CLOUD_API_WABA_ID": config.cloud_api_waba_id, "CLOUD_API_PIN": config.cloud_api_pin,
        "JULIA_PUBLIC_URL": config.public_url,
    }
    for var, value in required.items():
        if not value:
            raise ConfigError(f"{var} is required to run the activator")
    assert config.vps_hosts_file is not None and config.public_url is not None
    hosts = HostRegistry.from_json(Path(config.vps_hosts_file).read_bytes())
    try:
        check_host_keys(hosts, config.vps_known_hosts)
    except HostKeyUnknown as exc:  # else it would be connected to whoever answers there
        raise ConfigError(f"VPS_HOSTS_FILE: {exc}") from None
    return ActivatorEndpoints(
        salvy_url=config.salvy_api_url or "", salvy_token=config.salvy_api_token or "",
        evolution_url=config.evolution_api_url or "",
        evolution_api_key=config.evolution_api_key or "",
        cloud_api_url=config.cloud_api_url or "", cloud_api_token=config.cloud_api_token or "",
        cloud_api_waba_id=config.cloud_api_waba_id or "", cloud_api_pin=config.cloud_api_pin or "",
        hosts=list(hosts), ssh_keys=[config.vps_ssh_key],
        webhook_url=config.public_url.rstrip("/") + "/webhooks/evolution",
        webhook_secret=config.webhook_secret or "", known_hosts=config.vps_known_hosts)


@asynccontextmanager
async def activation_ports(nc: NATS, endpoints: ActivatorEndpoints, *,
                           ssh_timeouts: Sequence[float] = (10.0, 120.0)
                           ) -> AsyncIterator[ActivationPorts]:
    """Clients on one HTTP session, closed when the block ends."""
    async with aiohttp.ClientSession() as session:
        evolutions: dict[str, EvolutionClient] = {}

        def evolution_for(host: VpsHost) -> EvolutionClient:
            url = endpoints.evolution_urls.get(host.name, endpoints.evolution_url)
            if url not in evolutions:
                evolutions[url] = EvolutionClient(session, url, endpoints.evolution_api_key)
            return evolutions[url]

        vps = VpsClient(client_keys=endpoints.ssh_keys, known_hosts=endpoints.known_hosts,
                        connect_timeout=ssh_timeouts[0], command_timeout=ssh_timeouts[1])
        graph = CloudApiClient(session, endpoints.cloud_api_url, endpoints.cloud_api_token,
                               endpoints.cloud_api_waba_id)
        chips = ChipClient(nc)
        yield ActivationPorts(
            js=nc.jetstream(), chips=chips,
            salvy=SalvyClient(session, endpoints.salvy_url, endpoints.salvy_token),
            vps=vps, hosts=HostRegistry(endpoints.hosts), evolution_for=evolution_for,
            registrars={
                "cloud_api": CloudApiRegistrar(graph, evolution_for, pin=endpoints.cloud_api_pin,
                                               access_token=endpoints.cloud_api_token),
                "vps": VpsRegistrar(vps, evolution_for)},
            webhook=WebhookTarget(url=endpoints.webhook_url,
                                  master_secret=endpoints.webhook_secret))
        await chips.close()


async def run_activator(nc: NATS, clock: Clock, config: Config, stop: asyncio.Event, *,
                        endpoints: ActivatorEndpoints,
                        settings: ActivatorSettings = DEFAULT_SETTINGS,
                        holder: str | None = None) -> None:
    """Run the activator while holding its lease (TTL `config.lease_ttl`), stand by while
    another process does, until `stop` is set. The clients stay open across tenures, so a
    standby takes over without connecting anew."""
    lease = await part_lease(nc, ACTIVATOR_LEASE, holder)
    async with activation_ports(nc, endpoints) as ports:
        await run_while_holding(lease, config.lease_ttl,
                                lambda: Activator(ports, clock, settings), stop)
