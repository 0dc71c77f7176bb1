"""Run every projection as a task; what `julia-chips run` and `projections run` start."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATS

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
