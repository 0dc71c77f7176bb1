"""SIGKILL the activator process in the middle of each step in turn; restarts finish every
activation without repeating a completed step: one number, one instance, one register."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from julia_chips.contract import activation as ev
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import RegistrarKind, instance_name
from tests.conftest import new_chip_id
from tests.integration.activation_fixtures import World, activation_world
from tests.integration.test_activation import STEP_EVENTS
from tests.integration.workers import kill

ACTIONS = ("MarkActivating", "ObtainNumber", "AllocateHost", "CreateInstance", "RequestCode",
           "AwaitCode", "Register", "AwaitConnection", "Complete")


def start(world: World, nats_url: str, tmp: Path, stall: str | None,
          registrar: RegistrarKind) -> subprocess.Popen[bytes]:
    endpoints = msgspec.structs.replace(world.endpoints, ssh_keys=[str(tmp / "vps_key")])
    (tmp / "endpoints.json").write_bytes(msgspec.json.encode(endpoints))
    env = {**os.environ, "JULIA_REGISTRAR": registrar,
           **({"JULIA_TEST_STALL": stall} if stall else {})}
    with (tmp / "activator.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.activator_process",
             str(tmp / "endpoints.json"), nats_url, str(tmp)],
            env=env, stdout=out, stderr=subprocess.STDOUT)


async def until_marker(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not path.exists():  # noqa: ASYNC240 (a tiny stat, test only)
            assert proc.poll() is None, "activator process died"
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("registrar", ["vps", "cloud_api"])
async def test_sigkill_mid_step_resumes_without_repeating_steps(
        nc: NATS, nats_url: str, tmp_path: Path, registrar: RegistrarKind) -> None:
    async with activation_world(nc, hosts=2, capacity=20) as world:
        world.sandbox.vps_client_key.write_private_key(str(tmp_path / "vps_key"))
        chips: list[str] = []
        for action in ACTIONS:
            chip_id = new_chip_id()
            chips.append(chip_id)
            proc = start(world, nats_url, tmp_path, f"{chip_id}:{action}", registrar)
            try:
                await _provision(world, chip_id)
                await until_marker(tmp_path / chip_id, proc)
            finally:
                kill(proc)
        proc = start(world, nats_url, tmp_path, None, registrar)
        try:
            await world.until_settled(chips, timeout=60)
        finally:
            kill(proc)

    sandbox = world.sandbox
    assert sandbox.cloud_api is not None
    assert len(sandbox.salvy.accounts) == len(chips)  # one number per chip
    assert set(sandbox.evolution.instances) == {instance_name(c) for c in chips}
    if registrar == "cloud_api":  # a repeated register would spend the 72 h budget
        assert [n.register_calls for n in sandbox.cloud_api.numbers.values()] == [1] * len(chips)
    else:  # a repeated register finds the number registered: one slot each
        assert sum(h.used_slots for h in sandbox.hosts) == len(chips)
        assert sum(len(h.registered) for h in sandbox.hosts) == len(chips)
    for chip, action in zip(chips, ACTIONS, strict=True):
        assert isinstance((await world.chip_events(chip))[-1], chip_ev.Activated), action
        saga = await world.saga_events(chip)
        kinds = Counter(type(e) for e in saga)
        assert all(kinds[k] == 1 for k in STEP_EVENTS), (action, kinds)
        retries = [(e.step, e.reason) for e in saga if isinstance(e, ev.AttemptFailed)]
        assert retries == [], (action, retries)


async def _provision(world: World, chip: str) -> None:
    reply = await world.chips.send(chip, cmd.Provision(command_id="provision", ddd=11))
    assert reply.ok, reply
