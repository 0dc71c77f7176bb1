"""Start every sandbox stand-in at once, wired together like the real world.

The VPS hosts' "request code" makes the Salvy sandbox text a WhatsApp code to the number,
so the activation path (buy number → request code → SMS webhook → register) runs end to
end on loopback. With `host_scripts`, each host answers by running the shipped scripts
against its own Evolution listener and registration agent, as a real host would.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from aiohttp import web

from julia_chips.clock import Clock, SystemClock
from julia_chips.gateways.vps.hosts import VpsHost
from julia_chips.sandbox.cloud_api import GRAPH_VERSION, CloudApiWorld, create_cloud_api_app
from julia_chips.sandbox.doctors import DoctorPopulation
from julia_chips.sandbox.evolution_api import create_evolution_app
from julia_chips.sandbox.evolution_world import EvolutionWorld
from julia_chips.sandbox.host_agent import create_agent_app
from julia_chips.sandbox.salvy_api import SalvyWorld, create_salvy_app
from julia_chips.sandbox.vps_host import HostServices, SandboxVpsHost
from julia_chips.sandbox.webhook_poster import WebhookPoster

LOOPBACK = "127.0.0.1"
CLOUD_API_WABA_ID = "1000000000001"
CLOUD_API_PIN = "246810"  # the two-step PIN the activator registers numbers with


@dataclass(frozen=True)
class SandboxKeys:
    """The keys the stand-ins accept. Random by default; `from_env` takes those already set
    under the names `julia-chips run` reads, so a sandbox in one process and `run` in another
    agree without either printing a key."""

    evolution_api_key: str
    salvy_token: str
    salvy_webhook_secret: str
    cloud_api_token: str
    cloud_api_app_secret: str

    @classmethod
    def generate(cls) -> SandboxKeys:
        return cls(evolution_api_key=secrets.token_hex(16),
                   salvy_token=f"salvy_test_{secrets.token_hex(12)}",
                   salvy_webhook_secret="whsec_"
                   + base64.b64encode(secrets.token_bytes(24)).decode(),
                   cloud_api_token=secrets.token_hex(16),
                   cloud_api_app_secret=secrets.token_hex(16))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SandboxKeys:
        random_keys = cls.generate()
        return cls(
            evolution_api_key=env.get("EVOLUTION_API_KEY") or random_keys.evolution_api_key,
            salvy_token=env.get("SALVY_API_TOKEN") or random_keys.salvy_token,
            salvy_webhook_secret=env.get("SALVY_WEBHOOK_SECRET")
            or random_keys.salvy_webhook_secret,
            cloud_api_token=env.get("CLOUD_API_TOKEN") or random_keys.cloud_api_token,
            cloud_api_app_secret=env.get("CLOUD_API_APP_SECRET")
            or random_keys.cloud_api_app_secret)


@dataclass
class Sandbox:
    """Where everything listens, the keys to use, and handles for fault injection."""

    evolution_url: str
    evolution_api_key: str
    salvy_url: str
    salvy_token: str
    salvy_webhook_secret: str
    vps_client_key: asyncssh.SSHKey  # export_private_key() to hand it to VPS_SSH_KEY
    vps_hosts: list[VpsHost]
    evolution: EvolutionWorld
    salvy: SalvyWorld
    hosts: list[SandboxVpsHost]
    doctors: DoctorPopulation
    poster: WebhookPoster
    cloud_api: CloudApiWorld | None = None
    cloud_api_url: str = ""  # Graph base, version included
    evolution_urls: dict[str, str] = field(default_factory=dict)  # host name -> its gateway
    _runners: list[web.AppRunner] = field(default_factory=list)

    async def close(self) -> None:
        """Stop servers and hosts, and drop undelivered webhooks."""
        self.evolution.close()
        for host in self.hosts:
            await host.close()
        await self.poster.close()
        for runner in self._runners:
            await runner.cleanup()


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on a free loopback port; returns the runner and its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{LOOPBACK}:{port}"


async def _run_scripts(host: SandboxVpsHost, scripts: Path, evolution: EvolutionWorld,
                       runners: list[web.AppRunner]) -> str:
    """Give `host` its own gateway listener and registration agent, and make it answer with
    the scripts in `scripts`; returns the listener's URL (the host's Evolution API)."""
    gateway = create_evolution_app(evolution, host=host.name,
                                   gateway_up=lambda: host.gateway_up)
    gateway_runner, gateway_url = await serve(gateway)
    token = secrets.token_hex(16)
    agent_runner, agent_url = await serve(create_agent_app(host, token))
    runners += [gateway_runner, agent_runner]
    host.run_scripts(scripts, HostServices(evolution_url=gateway_url,
                                           evolution_api_key=evolution.api_key,
                                           agent_url=agent_url, agent_token=token))
    return gateway_url


async def start_sandbox(
    *,
    salvy_webhook_url: str | None = None,
    cloud_api_webhook_url: str | None = None,
    seed: int = 7,
    doctors: int = 50,
    hosts: int = 2,
    host_capacity: int = 10,
    pace: float = 1.0,
    link_delay: float | None = 1.0,
    clock: Clock | None = None,
    keys: SandboxKeys | None = None,
    host_scripts: Path | None = None,
) -> Sandbox:
    """Start the Evolution and Salvy stand-ins and `hosts` SSH hosts on 127.0.0.1.

    Evolution instances post webhooks to the URL and headers they were created with.

    :param salvy_webhook_url: where `sms.received` goes (Salvy sets it in its dashboard).
    :param cloud_api_webhook_url: where Meta posts the Cloud API numbers' statuses and
        messages (set in the app's dashboard), signed with `keys.cloud_api_app_secret`.
    :param pace: seconds per simulated doctor "beat"; tests use ~0.01.
    :param link_delay: seconds from connect to `open`; None = only `evolution.link()`.
    :param keys: the keys to accept (default: random ones).
    :param clock: dates Salvy's SMS and Evolution's webhooks (default: the wall clock); give
        the webhook edge the same one, or its replay window refuses them.
    :param host_scripts: the folder of the shipped host scripts (`vps_host.shipped_scripts`):
        the hosts run them, each with an Evolution listener of its own (`evolution_urls`) and
        a registration agent; default: the hosts answer in Python.
    """
    keys = keys or SandboxKeys.generate()
    clock = clock or SystemClock()
    poster = WebhookPoster()
    population = DoctorPopulation.seeded(doctors, seed=seed, pace=pace)
    evolution = EvolutionWorld(
        api_key=keys.evolution_api_key, doctors=population, poster=poster, clock=clock,
        link_delay=link_delay,
    )
    salvy = SalvyWorld(
        token=keys.salvy_token, webhook_secret=keys.salvy_webhook_secret,
        poster=poster, clock=clock, seed=seed,
    )  # fmt: skip
    salvy.webhook_url = salvy_webhook_url
    evo_runner, evolution_url = await serve(create_evolution_app(evolution))
    evolution.server_url = evolution_url
    salvy_runner, salvy_url = await serve(create_salvy_app(salvy))
    cloud = CloudApiWorld(token=keys.cloud_api_token, waba_id=CLOUD_API_WABA_ID, salvy=salvy,
                          app_secret=keys.cloud_api_app_secret, poster=poster, clock=clock)
    cloud.webhook_url = cloud_api_webhook_url
    evolution.cloud_api = cloud
    cloud_runner, cloud_url = await serve(create_cloud_api_app(cloud))
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    sandbox_hosts = [
        SandboxVpsHost(f"vps-{index + 1}", client_key=client_key, capacity=host_capacity,
                       send_code=lambda digits: salvy.send_whatsapp_code("+" + digits))
        for index in range(hosts)
    ]  # fmt: skip
    entries = [await host.start() for host in sandbox_hosts]
    runners = [evo_runner, salvy_runner, cloud_runner]
    evolution_urls: dict[str, str] = {}
    for host in sandbox_hosts if host_scripts is not None else ():
        assert host_scripts is not None
        evolution_urls[host.name] = await _run_scripts(host, host_scripts, evolution, runners)
    return Sandbox(
        evolution_url=evolution_url, evolution_api_key=evolution.api_key,
        salvy_url=salvy_url, salvy_token=salvy.token, salvy_webhook_secret=salvy.webhook_secret,
        vps_client_key=client_key, vps_hosts=entries, evolution=evolution, salvy=salvy,
        hosts=sandbox_hosts, doctors=population, poster=poster, cloud_api=cloud,
        cloud_api_url=f"{cloud_url}/{GRAPH_VERSION}", evolution_urls=evolution_urls,
        _runners=runners,
    )  # fmt: skip
