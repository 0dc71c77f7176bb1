"""Drive Julia Chips from Python: provision a chip, follow its events, ask the balancer.

    NATS_URL=nats://127.0.0.1:4222 .venv/bin/python examples/python_client.py

With `make run` going, NATS_URL may be left out: the script reads `.julia/endpoints.json`
as the CLI does. Commands go through the project's clients (`ChipClient`, `RouteClient`),
which store them in JetStream and wait for the answer on an inbox of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import nats

from julia_chips.balancer.client import RouteClient
from julia_chips.chip.client import ChipClient
from julia_chips.contract.chip_commands import Provision
from julia_chips.contract.codec import decode_event
from julia_chips.contract.subjects import chip_events


def nats_url() -> str:
    if url := os.environ.get("NATS_URL"):
        return url
    data_dir = Path(os.environ.get("JULIA_DATA_DIR", ".julia"))
    return str(json.loads((data_dir / "endpoints.json").read_text())["nats_url"])


async def main() -> int:
    nc = await nats.connect(nats_url().split(","))
    chips, routes = ChipClient(nc), RouteClient(nc)
    try:
        chip_id = str(uuid.uuid4())
        events = await nc.subscribe(chip_events(chip_id))  # live, from now on
        reply = await chips.send(chip_id, Provision(command_id=uuid.uuid4().hex, ddd=11))
        print(f"provision {chip_id}: ok={reply.ok} state={reply.state}")
        first = await events.next_msg(timeout=10)
        print(f"event: {type(decode_event(first.data)).__name__}")
        answer = await routes.opt_out("dr-example", source="python example")
        print(f"opt-out dr-example: ok={answer.ok} status={answer.status}")
        return 0 if reply.ok and answer.ok else 1
    finally:
        await chips.close()
        await routes.close()
        await nc.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
