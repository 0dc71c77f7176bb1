"""`serve_sandbox`: run the sandbox until cancelled (`julia-chips sandbox`, `make run`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from julia_chips.sandbox.vps_host import host_scripts
from julia_chips.sandbox.world import Sandbox, SandboxKeys, start_sandbox

log = logging.getLogger(__name__)


async def serve_sandbox(*, salvy_webhook_url: str | None = None,
                        cloud_api_webhook_url: str | None = None, hosts: int = 10,
                        host_capacity: int = 10, doctors: int = 50, seed: int = 7,
                        pace: float = 1.0, link_delay: float | None = 1.0,
                        keys: SandboxKeys | None = None,
                        ready: Callable[[Sandbox], Awaitable[None]] | None = None) -> None:
    """Serve every stand-in on 127.0.0.1 until cancelled; URLs are logged, secrets never.

    :param salvy_webhook_url: our `/webhooks/salvy` (SMS codes go there, Svix-signed).
    :param cloud_api_webhook_url: our `/webhooks/cloud-api` (Cloud API numbers' statuses and
        doctors' replies go there, signed with the app secret).
    :param ready: awaited once everything listens, with the Sandbox (keys, hosts, faults):
        `make run` uses it to start the activator against the sandbox.
    """
    sandbox = await start_sandbox(salvy_webhook_url=salvy_webhook_url,
                                  cloud_api_webhook_url=cloud_api_webhook_url, hosts=hosts,
                                  host_capacity=host_capacity, doctors=doctors, seed=seed,
                                  pace=pace, link_delay=link_delay, keys=keys,
                                  host_scripts=host_scripts())
    try:
        log.info("sandbox Evolution API at %s", sandbox.evolution_url)
        log.info("sandbox Salvy API at %s (SMS webhooks to %s)", sandbox.salvy_url,
                 salvy_webhook_url or "nowhere yet")
        log.info("sandbox Cloud API at %s", sandbox.cloud_api_url)
        for host in sandbox.vps_hosts:
            log.info("sandbox VPS host %s at ssh://%s:%d", host.name, host.address, host.port)
        if ready is not None:
            await ready(sandbox)
        await asyncio.Event().wait()
    finally:
        await sandbox.close()
