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
from julia_chips.config import Config, ConfigError, check_activator_config
from julia_chips.contract.activation import RegistrarKind, Step
from julia_chips.contract.subjects import ACTIVATOR_LEASE
from julia_chips.gateways.cloud_api.client import CloudApiClient
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.wire import WebhookTarget
from julia_chips.gateways.registrars import CloudApiRegistrar, Registrar, VpsRegistrar
from julia_chips.gateways.salvy.client import SalvyClient
from julia_chips.gateways.vps.client import VpsClient
from julia_chips.gateways.vps.host_keys import HostKeyUnknown, check_host_keys
from julia_chips.gateways.vps.hosts import HostRegistry, VpsHost
from julia_chips.jetstream.part_lease import part_lease, run_while_holding
from julia_chips.sandbox.world import CLOUD_API_PIN, Sandbox

log = logging.getLogger(__name__)


class CloudApiEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The Graph account the `cloud_api` registrar registers numbers in. Secrets held."""

    url: str
    token: str
    waba_id: str
    pin: str  # the two-step verification PIN set at register


class ActivatorEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """Where the activator's outside world is. Secrets are held, never logged.

    Both registrars allocate a host for the gateway instance, so hosts and the SSH key are
    always there; `cloud_api` is None when the Cloud API is not configured, and then only the
    `vps` registrar is built.
    """

    salvy_url: str
    salvy_token: str
    evolution_url: str  # one gateway for every host (per-host gateways: `evolution_urls`)
    evolution_api_key: str
    hosts: list[VpsHost]
    ssh_keys: list[Any]  # asyncssh keys or key file paths
    webhook_url: str  # our public /webhooks/evolution, set on each instance
    webhook_secret: str  # the master each instance's x-julia-secret is derived from
    cloud_api: CloudApiEndpoint | None = None
    evolution_urls: dict[str, str] = {}  # host name -> its own gateway, when they differ
    known_hosts: Path | None = None  # for hosts without a pinned host_key


def endpoints_from_sandbox(sandbox: Sandbox, *, webhook_url: str, webhook_secret: str,
                           pin: str = CLOUD_API_PIN) -> ActivatorEndpoints:
    """The sandbox serves both registrars' worlds, so both are built."""
    assert sandbox.cloud_api is not None
    cloud_api = CloudApiEndpoint(url=sandbox.cloud_api_url, token=sandbox.cloud_api.token,
                                 waba_id=sandbox.cloud_api.waba_id, pin=pin)
    return ActivatorEndpoints(
        salvy_url=sandbox.salvy_url, salvy_token=sandbox.salvy_token,
        evolution_url=sandbox.evolution_url, evolution_api_key=sandbox.evolution_api_key,
        hosts=sandbox.vps_hosts, ssh_keys=[sandbox.vps_client_key],
        webhook_url=webhook_url, webhook_secret=webhook_secret, cloud_api=cloud_api,
        evolution_urls=sandbox.evolution_urls)


def endpoints_from_config(config: Config) -> ActivatorEndpoints:
    """The real services, from Config: what `config.registrar` needs, and the Cloud API too
    when it is configured (a saga started with it keeps it).

    :raises ConfigError: naming the first variable the activator needs and lacks.
    """
    with_cloud_api = check_activator_config(config)
    assert config.vps_hosts_file is not None and config.public_url is not None
    hosts = HostRegistry.from_json(Path(config.vps_hosts_file).read_bytes())
    try:
        check_host_keys(hosts, config.vps_known_hosts)
    except HostKeyUnknown as exc:  # else it would be connected to whoever answers there
        raise ConfigError(f"VPS_HOSTS_FILE: {exc}") from None
    cloud_api = CloudApiEndpoint(
        url=config.cloud_api_url or "", token=config.cloud_api_token or "",
        waba_id=config.cloud_api_waba_id or "", pin=config.cloud_api_pin or "",
    ) if with_cloud_api else None  # fmt: skip
    return ActivatorEndpoints(
        salvy_url=config.salvy_api_url or "", salvy_token=config.salvy_api_token or "",
        evolution_url=config.evolution_api_url or "",
        evolution_api_key=config.evolution_api_key or "",
        hosts=list(hosts), ssh_keys=[config.vps_ssh_key],
        webhook_url=config.public_url.rstrip("/") + "/webhooks/evolution",
        webhook_secret=config.webhook_secret or "", cloud_api=cloud_api,
        known_hosts=config.vps_known_hosts)


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
        registrars: dict[RegistrarKind, Registrar] = {"vps": VpsRegistrar(vps, evolution_for)}
        if (cloud := endpoints.cloud_api) is not None:
            graph = CloudApiClient(session, cloud.url, cloud.token, cloud.waba_id)
            registrars["cloud_api"] = CloudApiRegistrar(graph, evolution_for, pin=cloud.pin,
                                                        access_token=cloud.token)
        chips = ChipClient(nc)
        yield ActivationPorts(
            js=nc.jetstream(), chips=chips,
            salvy=SalvyClient(session, endpoints.salvy_url, endpoints.salvy_token),
            vps=vps, hosts=HostRegistry(endpoints.hosts), evolution_for=evolution_for,
            registrars=registrars,
            webhook=WebhookTarget(url=endpoints.webhook_url,
                                  master_secret=endpoints.webhook_secret))
        await chips.close()


def activator_settings(config: Config) -> ActivatorSettings:
    """New chips get `JULIA_REGISTRAR`'s registrar (sagas in flight keep the one they
    stored); the configured relink (JULIA_RELINK_MAX_TRIES tries of JULIA_RELINK_WAIT seconds
    each); the rest as tuned in the saga's policy."""
    policy = DEFAULT_SETTINGS.policy
    policy = msgspec.structs.replace(
        policy, attempts_by_step={**policy.attempts_by_step, Step.RELINK: config.relink_max_tries},
        wait_timeouts={**policy.wait_timeouts, Step.RELINK: config.relink_wait})
    return msgspec.structs.replace(DEFAULT_SETTINGS, policy=policy,
                                   default_registrar=config.registrar)


async def run_activator(nc: NATS, clock: Clock, config: Config, stop: asyncio.Event, *,
                        endpoints: ActivatorEndpoints,
                        settings: ActivatorSettings | None = None,
                        holder: str | None = None) -> None:
    """Run the activator while holding its lease (TTL `config.lease_ttl`), stand by while
    another process does, until `stop` is set. The clients stay open across tenures, so a
    standby takes over without connecting anew.

    :param settings: default: `activator_settings(config)`.
    """
    chosen = settings or activator_settings(config)
    lease = await part_lease(nc, ACTIVATOR_LEASE, holder)
    async with activation_ports(nc, endpoints) as ports:
        await run_while_holding(lease, config.lease_ttl,
                                lambda: Activator(ports, clock, chosen), stop)
