"""Run every projection as a task; what `julia-chips run` and `projections run` start.

They run in one process at a time, under the `projections` lease: runners in two processes
would share each projection's durable, and each would keep rewinding it at its checkpoint.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATS

from julia_chips.contract.subjects import PROJECTIONS_LEASE
from julia_chips.jetstream.part_lease import part_lease, run_while_holding
from julia_chips.projections.catalog import PROJECTIONS
from julia_chips.projections.runner import BATCH, ProjectionRunner

log = logging.getLogger(__name__)


class Projections:
    """One runner per projection, started together and stopped together."""

    def __init__(self, nc: NATS, database_url: str, batch: int = BATCH) -> None:
        self.runners = [ProjectionRunner(p, nc, database_url, batch)
                        for p in PROJECTIONS.values()]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(r.run(), name=f"projection-{r.projection.name}")
                       for r in self.runners]
        log.info("projections running: %s", ", ".join(PROJECTIONS))

    async def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Tenure:
    """Every projection, as a lease-held part: `run` until `stop`."""

    def __init__(self, projections: Projections) -> None:
        self._projections = projections
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        self._projections.start()
        await self._stopping.wait()
        await self._projections.stop()

    def stop(self) -> None:
        self._stopping.set()


async def run_projections(nc: NATS, database_url: str, stop: asyncio.Event, lease_ttl: float,
                          batch: int = BATCH, holder: str | None = None) -> None:
    """Project while holding the `projections` lease, stand by while another process does,
    until `stop` is set."""
    lease = await part_lease(nc, PROJECTIONS_LEASE, holder)
    await run_while_holding(lease, lease_ttl,
                            lambda: _Tenure(Projections(nc, database_url, batch)), stop)
