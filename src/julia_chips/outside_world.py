"""Which outside world `julia-chips run` talks to: the real services, or the sandbox.

With no Salvy, Evolution or Cloud API URL configured, `run` serves the sandbox on loopback
and points the activator, the balancer's gateway and the webhook secrets at it, so a
newcomer's `make run` needs no credentials.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import msgspec

from julia_chips.activation.wiring import (
    ActivatorEndpoints,
    endpoints_from_config,
    endpoints_from_sandbox,
)
from julia_chips.balancer.dispatch import EvolutionSender
from julia_chips.clock import Clock
from julia_chips.config import Config
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.sandbox.vps_host import host_scripts
from julia_chips.sandbox.world import Sandbox, start_sandbox

log = logging.getLogger(__name__)
SANDBOX_HOSTS = 10
SANDBOX_HOST_CAPACITY = 10  # instances per sandbox host
SANDBOX_DOCTORS = 50  # without the demo
DOCTOR_BEAT = 300.0  # simulated seconds a demo doctor takes to read (twice that to answer)


class OutsideWorld(msgspec.Struct, kw_only=True):
    webhook_secret: str  # master of the per-instance `x-julia-secret`s (instance_secret.py)
    salvy_webhook_secret: str | None  # Svix secret of Salvy webhooks
    cloud_api_app_secret: str | None  # Meta's app secret: signs Cloud API webhooks
    cloud_api_verify_token: str | None  # what Meta's subscription handshake presents
    evolution_url: str
    evolution_api_key: str
    sandbox: Sandbox | None = None

    def activator_endpoints(self, config: Config, http_url: str) -> ActivatorEndpoints:
        if self.sandbox is None:
            return endpoints_from_config(config)
        return endpoints_from_sandbox(self.sandbox, webhook_url=f"{http_url}/webhooks/evolution",
                                      webhook_secret=self.webhook_secret)

    def listen_at(self, http_url: str) -> None:
        """Once our HTTP port is known: the sandbox's Salvy sends SMS webhooks there, its
        Cloud API the statuses and replies of the numbers registered on it."""
        if self.sandbox is not None:
            self.sandbox.salvy.webhook_url = f"{http_url}/webhooks/salvy"
            assert self.sandbox.cloud_api is not None
            self.sandbox.cloud_api.webhook_url = f"{http_url}/webhooks/cloud-api"


@asynccontextmanager
async def outside_world(config: Config, clock: Clock) -> AsyncIterator[OutsideWorld]:
    """The real services, or the sandbox dating its webhooks by `clock` (the demo's, when
    it runs: its doctors then read within minutes of that clock, and the hosts hold the
    demo fleet)."""
    if not config.uses_sandbox:
        yield OutsideWorld(webhook_secret=config.webhook_secret or "",
                           salvy_webhook_secret=config.salvy_webhook_secret,
                           cloud_api_app_secret=config.cloud_api_app_secret,
                           cloud_api_verify_token=config.cloud_api_verify_token,
                           evolution_url=config.evolution_api_url or "",
                           evolution_api_key=config.evolution_api_key or "")
        return
    if config.demo:
        hosts = max(SANDBOX_HOSTS, math.ceil(config.demo_chips / SANDBOX_HOST_CAPACITY) + 1)
        sandbox = await start_sandbox(hosts=hosts, host_capacity=SANDBOX_HOST_CAPACITY,
                                      doctors=config.demo_doctors, clock=clock,
                                      pace=min(1.0, DOCTOR_BEAT / config.demo_speed),
                                      host_scripts=host_scripts())
    else:
        sandbox = await start_sandbox(hosts=SANDBOX_HOSTS, host_capacity=SANDBOX_HOST_CAPACITY,
                                      doctors=SANDBOX_DOCTORS, clock=clock,
                                      host_scripts=host_scripts())
    assert sandbox.cloud_api is not None
    log.info("no outside services configured: serving the sandbox (Evolution %s, Salvy %s, "
             "Cloud API %s, %d SSH hosts); new chips registered by %s", sandbox.evolution_url,
             sandbox.salvy_url, sandbox.cloud_api_url, len(sandbox.vps_hosts), config.registrar)
    try:
        yield OutsideWorld(webhook_secret=config.webhook_secret or secrets.token_hex(16),
                           salvy_webhook_secret=sandbox.salvy_webhook_secret,
                           cloud_api_app_secret=sandbox.cloud_api.app_secret,
                           cloud_api_verify_token=config.cloud_api_verify_token,
                           evolution_url=sandbox.evolution_url,
                           evolution_api_key=sandbox.evolution_api_key, sandbox=sandbox)
    finally:
        await sandbox.close()


@asynccontextmanager
async def whatsapp_sender(world: OutsideWorld) -> AsyncIterator[EvolutionSender]:
    """The balancer's gateway port on the Evolution API of this world."""
    async with aiohttp.ClientSession() as session:
        yield EvolutionSender(EvolutionClient(session, world.evolution_url,
                                              world.evolution_api_key))
