"""`python -m tests.integration.deriver_process <nats_url> <marker> [<holder>]`: the
observation deriver as its own OS process, so a test can SIGKILL it between storing
observations and acking the raw bodies they came from. With `<holder>`, it runs as
`julia-chips run` does: only while it holds the deriver's lease (TTL `LEASE_TTL`), in that
name, standing by otherwise.

With `JULIA_TEST_STALL_AFTER=<n>`, the observations from the n+1-th to the 2n-th are stored
and then hang before their raw bodies are acked (the first of them writes `<marker>` so the
test knows when), and the ones after hang before they are stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import nats

from julia_chips.ingest.deriver import ObservationDeriver, run_observation_deriver
from julia_chips.jetstream.acked_publish import AckedPublisher, PubAck
from tests.conftest import LEASE_TTL
from tests.integration.ingress_fixtures import FAST_DERIVER

submit_nowait = AckedPublisher.submit_nowait


def stalling(after: int, marker: Path):  # type: ignore[no-untyped-def]
    sent = 0

    def submit_then_stall(self: AckedPublisher, subject: str, payload: bytes,
                          headers: dict[str, str], *, timeout: float = 5.0
                          ) -> asyncio.Future[PubAck]:
        nonlocal sent
        sent += 1
        never: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        if sent > 2 * after:  # delivered and never stored: these must come again
            return never
        stored = submit_nowait(self, subject, payload, headers, timeout=timeout)
        if sent <= after:
            return stored

        def mark(done: asyncio.Future[PubAck]) -> None:  # stored for sure; its ack never
            if done.exception() is None and not marker.exists():  # reaches the deriver
                marker.write_text(str(sent))
        stored.add_done_callback(mark)
        return never
    return submit_then_stall


async def main(nats_url: str, marker: str, holder: str | None = None) -> None:
    after = int(os.environ.get("JULIA_TEST_STALL_AFTER", "0"))
    if after:
        AckedPublisher.submit_nowait = stalling(  # type: ignore[method-assign]
            after, Path(marker))
    nc = await nats.connect(nats_url)
    if holder is None:
        await ObservationDeriver(nc, FAST_DERIVER).run()
        return
    logging.getLogger(__name__).info("%s connected", holder)
    await run_observation_deriver(nc, asyncio.Event(), LEASE_TTL, FAST_DERIVER, holder)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(main(*sys.argv[1:4]))
