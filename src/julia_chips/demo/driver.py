"""The demo's part in `run`: provision the demo fleet, run the recruiter, and have the
sandbox play the script's moments, on the demo's accelerated clock.

It reads the fleet from CHIP_EVENTS before it provisions anything, and the chip ids and
command ids are fixed (`script.chip_id`, `demo-provision:<chip id>`), so a restarted `run`
provisions only what is missing. Provisioning goes through `ChipClient` like an
operator's: the activator buys a number in the area code, links it in the sandbox's
Evolution API and the chip starts warming. The moments are webhooks from that Evolution API
(`connection.update` close 402 or 403), so the health monitor finds them as it would find
WhatsApp's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from nats.aio.client import Client as NATS

from julia_chips.chip.client import ChipClient
from julia_chips.clock import AcceleratedClock
from julia_chips.contract import chip as ev
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.chip_commands import Provision
from julia_chips.demo.model import script as sc
from julia_chips.demo.recruiter import Recruiter
from julia_chips.demo.timeline import remember
from julia_chips.jetstream.stored_chip_event import follow_chip_events
from julia_chips.sandbox.world import Sandbox
from julia_chips.supervisor import run_until

log = logging.getLogger(__name__)
TICK = 0.5  # real seconds between two looks at the clock
# Events after which the balancer moves a chip's conversations to others.
STOPS_SERVING = (ev.Ready, ev.OutOfService, ev.Cooled, ev.Banned, ev.Retired)


class DemoDriver:
    def __init__(self, nc: NATS, clock: AcceleratedClock, sandbox: Sandbox,
                 script: sc.DemoScript, data_dir: Path) -> None:
        self._clock, self._sandbox, self._script = clock, sandbox, script
        self._data_dir = data_dir
        self._chips = ChipClient(nc)
        self._feed = follow_chip_events(nc.jetstream(), self._on_event, reader="demo")
        self._recruiter = Recruiter(nc, clock, sandbox.doctors, script)
        self.fleet = sc.DemoFleet()
        self._stopping = asyncio.Event()

    def _on_event(self, event: AnyChipEvent) -> None:
        self.fleet = sc.follow(self.fleet, event, self._script)
        if isinstance(event, STOPS_SERVING):
            self._recruiter.forget(event.chip_id)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self._feed.start()  # the fleet as it stands before anything is provisioned
        await self._recruiter.start()
        provisioning = asyncio.create_task(self._provision(sc.to_provision(self._script,
                                                                           self.fleet.chips)))
        try:
            while not self._stopping.is_set():
                remember(self._data_dir, self._clock)
                self._recruiter.tick(self.fleet)
                self._play(sc.due_moments(self.fleet, self._clock.now(), self._script,
                                          self._recruiter.carrying()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), TICK)
        finally:
            provisioning.cancel()
            await asyncio.gather(provisioning, return_exceptions=True)
            remember(self._data_dir, self._clock)
            await self._recruiter.stop()
            await self._feed.stop()
            await self._chips.close()
            log.info("demo stopped: recruiter outcomes %s", dict(self._recruiter.outcomes))

    async def _provision(self, missing: list[tuple[str, int]]) -> None:
        if missing:
            log.info("demo: provisioning %d chips, one every %gs", len(missing),
                     self._script.provision_every)
        for chip_id, ddd in missing:
            try:
                reply = await self._chips.send(chip_id, Provision(
                    command_id=f"demo-provision:{chip_id}", ddd=ddd), timeout=30)
            except TimeoutError:
                log.warning("demo: no answer to the provision of %s yet (it stays stored)",
                            chip_id)
            else:
                if not reply.ok:
                    log.warning("demo: %s not provisioned: %s", chip_id, reply.error)
            await asyncio.sleep(self._script.provision_every)

    def _play(self, moments: list[sc.Moment]) -> None:
        """The sandbox's Evolution API does what WhatsApp would."""
        evolution = self._sandbox.evolution
        for moment in moments:
            now = self._clock.now()
            self.fleet = sc.done(self.fleet, moment, now)
            if moment.instance not in evolution.instances:
                log.warning("demo: %s has no sandbox instance (%s) any more: a `run` before "
                            "this one linked it; %s skipped", moment.chip_id, moment.instance,
                            moment.kind)
                continue
            log.info("demo: WhatsApp %s chip %s", {
                sc.MomentKind.BLOCK: "blocks (402, a day's rest)",
                sc.MomentKind.RELINK: "lets the blocked session reconnect",
                sc.MomentKind.BAN: "bans (403)"}[moment.kind], moment.chip_id)
            match moment.kind:
                case sc.MomentKind.BLOCK:
                    evolution.disconnect(moment.instance, sc.TEMPORARY_BAN)
                case sc.MomentKind.RELINK:
                    evolution.link(moment.instance)
                case sc.MomentKind.BAN:
                    evolution.ban(moment.instance)


async def run_demo(nc: NATS, clock: AcceleratedClock, sandbox: Sandbox,
                   script: sc.DemoScript, data_dir: Path, stop: asyncio.Event) -> None:
    """Entry point for `julia-chips run`: the demo until `stop`; a failure raises at once,
    for the supervisor to restart it (a restart reads the fleet again)."""
    await run_until(DemoDriver(nc, clock, sandbox, script, data_dir), stop)
