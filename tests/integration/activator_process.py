"""`python -m tests.integration.activator_process <endpoints.json> <nats_url> <marker dir>`:
the activator as its own OS process, so a test can SIGKILL it in the middle of a step.

`JULIA_REGISTRAR` (default vps) is the registrar of its new chips.
`JULIA_TEST_STALL=<chip_id>:<Action>` makes that chip's action take effect and then hang
(before its outcome is recorded), writing `<marker dir>/<chip_id>` so the test knows when
to kill.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import msgspec
import nats

from julia_chips.activation import activator as activator_module
from julia_chips.activation.activator import Activator
from julia_chips.activation.effects import ActivationPorts, perform
from julia_chips.activation.model import steps as act
from julia_chips.activation.model.saga import Saga
from julia_chips.activation.wiring import ActivatorEndpoints, activation_ports
from julia_chips.clock import Clock, SystemClock
from julia_chips.config import load_config
from tests.integration.activation_fixtures import FAST


def stalling(target: tuple[str, str] | None, markers: Path):  # type: ignore[no-untyped-def]
    async def perform_then_stall(ports: ActivationPorts, clock: Clock, saga: Saga,
                                 action: act.Action, policy: act.SagaPolicy
                                 ) -> act.Outcome | None:
        outcome = await perform(ports, clock, saga, action, policy)
        if target == (saga.chip_id, type(action).__name__):
            (markers / saga.chip_id).write_text(type(action).__name__)
            await asyncio.Event().wait()  # hang here until SIGKILL
        return outcome
    return perform_then_stall


async def main(endpoints_file: str, nats_url: str, markers: str) -> None:
    raw = Path(endpoints_file).read_bytes()  # noqa: ASYNC240 (once, at start)
    endpoints = msgspec.json.decode(raw, type=ActivatorEndpoints)
    stall = os.environ.get("JULIA_TEST_STALL")
    target = tuple(stall.split(":", 1)) if stall else None
    activator_module.perform = stalling(target, Path(markers))  # type: ignore[assignment]
    nc = await nats.connect(nats_url)
    registrar = load_config({"JULIA_REGISTRAR": os.environ.get("JULIA_REGISTRAR", "")}).registrar
    settings = msgspec.structs.replace(FAST, default_registrar=registrar)
    async with activation_ports(nc, endpoints, ssh_timeouts=(2.0, 5.0)) as ports:
        await Activator(ports, SystemClock(), settings).run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(main(*sys.argv[1:4]))
