"""The activation test world: sandbox, webhook ingress and its observation deriver, chip
worker; real HTTP, SSH, NATS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
from nats.aio.client import Client as NATS

from julia_chips.activation.activator import Activator, ActivatorSettings
from julia_chips.activation.model.steps import SagaPolicy
from julia_chips.activation.saga_log import ActivationLog
from julia_chips.activation.wiring import (
    ActivatorEndpoints,
    activation_ports,
    endpoints_from_sandbox,
)
from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.clock import SystemClock
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import AnyActivationEvent, RegistrarKind, Step
from julia_chips.ingest.webhooks import WebhookIngress, create_webhook_app
from julia_chips.sandbox.world import Sandbox, serve, start_sandbox
from tests.conftest import new_chip_id
from tests.integration.ingress_fixtures import deriving
from tests.integration.workers import running_worker

WEBHOOK_SECRET = "activation-test-secret"
FAST = ActivatorSettings(policy=SagaPolicy(
    max_attempts=3, call_timeout=10.0, backoff_base=0.05, backoff_max=0.2,
    # Waits a loaded CI box can meet (a wait that expires is a retried step, which the
    # crash test counts as a repeat); tests of an expiry set their own (test_activation).
    wait_timeouts={Step.CODE: 15.0, Step.CONNECTION: 15.0}))


@dataclass
class World:
    nc: NATS
    sandbox: Sandbox
    endpoints: ActivatorEndpoints
    chips: ChipClient

    async def provision(self, count: int, ddd: int = 11) -> list[str]:
        ids = [new_chip_id() for _ in range(count)]
        replies = await asyncio.gather(*(
            self.chips.send(c, cmd.Provision(command_id="provision", ddd=ddd)) for c in ids))
        assert all(r.ok for r in replies), replies
        return ids

    async def chip_events(self, chip_id: str) -> list[chip_ev.AnyChipEvent]:
        log = JetStreamChipEventLog(self.nc.jetstream())
        return [stored.event for stored in await log.load(chip_id)]

    async def saga_events(self, chip_id: str) -> list[AnyActivationEvent]:
        return (await ActivationLog(self.nc.jetstream()).load(chip_id))[0]

    async def until_saga(self, chip_id: str, kind: type, timeout: float = 10.0
                         ) -> AnyActivationEvent:
        """The saga's first event of `kind`, waiting for it."""
        async with asyncio.timeout(timeout):
            while True:
                found = [e for e in await self.saga_events(chip_id) if isinstance(e, kind)]
                if found:
                    return found[0]
                await asyncio.sleep(0.02)

    async def until_settled(self, chip_ids: list[str], timeout: float = 60.0) -> None:
        """Until every chip is Activated or ActivationFailed."""
        async with asyncio.timeout(timeout):
            pending = set(chip_ids)
            while pending:
                for chip in list(pending):
                    events = await self.chip_events(chip)
                    if any(isinstance(e, chip_ev.Activated | chip_ev.ActivationFailed)
                           for e in events):
                        pending.discard(chip)
                await asyncio.sleep(0.1)


@asynccontextmanager
async def activation_world(nc: NATS, *, hosts: int = 2, capacity: int = 20,
                           link_delay: float | None = 0.05,
                           host_scripts: Path | None = None) -> AsyncIterator[World]:
    """:param host_scripts: the hosts run these scripts (default: they answer in Python)."""
    sandbox = await start_sandbox(hosts=hosts, host_capacity=capacity, link_delay=link_delay,
                                  pace=0.01, host_scripts=host_scripts)
    ingress = WebhookIngress(nc.jetstream(), SystemClock(), evolution_secret=WEBHOOK_SECRET,
                             salvy_secret=sandbox.salvy_webhook_secret)
    runner, base = await serve(create_webhook_app(ingress))
    sandbox.salvy.webhook_url = base + "/webhooks/salvy"
    endpoints = endpoints_from_sandbox(sandbox, webhook_url=base + "/webhooks/evolution",
                                       webhook_secret=WEBHOOK_SECRET)
    chips = ChipClient(nc)
    try:
        async with deriving(nc), running_worker(nc):
            yield World(nc=nc, sandbox=sandbox, endpoints=endpoints, chips=chips)
    finally:
        await chips.close()
        await sandbox.close()
        await runner.cleanup()


@asynccontextmanager
async def running_activator(world: World, settings: ActivatorSettings = FAST,
                            registrar: RegistrarKind | None = None
                            ) -> AsyncIterator[Activator]:
    """The activator on `world`; `registrar` (default: the settings') for its new chips."""
    if registrar is not None:
        settings = msgspec.structs.replace(settings, default_registrar=registrar)
    async with activation_ports(world.nc, world.endpoints, ssh_timeouts=(2.0, 5.0)) as ports:
        activator = Activator(ports, SystemClock(), settings)
        task = asyncio.create_task(activator.run())
        try:
            yield activator
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
