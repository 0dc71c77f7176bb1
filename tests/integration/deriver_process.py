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

from julia_chips.events.observations import Observation
from julia_chips.runtime import observation_deriver as deriver_module
from julia_chips.runtime.observation_deriver import ObservationDeriver, run_observation_deriver
from julia_chips.store.acked_publish import AckedPublisher, PubAck
from tests.conftest import LEASE_TTL
from tests.integration.ingress_fixtures import FAST_DERIVER

store = deriver_module.publish_observation


def stalling(after: int, marker: Path):  # type: ignore[no-untyped-def]
    stored = 0

    async def store_then_stall(publisher: AckedPublisher, observation: Observation, *,
                               msg_id: str | None = None, raw_seq: int | None = None,
                               timeout: float = 5.0) -> PubAck:
        nonlocal stored
        stored += 1
        if stored > 2 * after:  # delivered and never stored: these must come again
            await asyncio.Event().wait()
        ack = await store(publisher, observation, msg_id=msg_id, raw_seq=raw_seq,
                          timeout=timeout)
        if stored > after:
            if not marker.exists():  # noqa: ASYNC240 (a tiny stat, test only)
                marker.write_text(str(stored))  # noqa: ASYNC240 (once)
            await asyncio.Event().wait()  # hang before the ack, until SIGKILL
        return ack
    return store_then_stall


async def main(nats_url: str, marker: str, holder: str | None = None) -> None:
    after = int(os.environ.get("JULIA_TEST_STALL_AFTER", "0"))
    if after:
        deriver_module.publish_observation = stalling(after, Path(marker))  # type: ignore[assignment]
    nc = await nats.connect(nats_url)
    if holder is None:
        await ObservationDeriver(nc, FAST_DERIVER).run()
        return
    logging.getLogger(__name__).info("%s connected", holder)
    await run_observation_deriver(nc, asyncio.Event(), LEASE_TTL, FAST_DERIVER, holder)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(main(*sys.argv[1:4]))
