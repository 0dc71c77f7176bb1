"""`julia-chips sandbox` on its own is usable from another process: it writes the environment
`julia-chips run` needs (keys taken from the environment when set, never printed), lists its
doctors over HTTP, and a `run` started with that environment activates a chip through it."""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.aio.client import Client as NATS

from julia_chips.activation.saga_log import ActivationLog
from julia_chips.chip.client import ChipClient
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import ActivationRequested
from julia_chips.sandbox.env_file import sandbox_env, write_env_file
from julia_chips.sandbox.world import start_sandbox
from tests.conftest import new_chip_id
from tests.integration.test_run_command import _read, _start, _wait_for_line

GIVEN_KEY = "evolution-key-from-the-environment"


def _env_file(path: Path) -> tuple[int, dict[str, str]]:
    """The file's permission bits and its variables, read as a shell would."""
    pairs = (shlex.split(line)[0].split("=", 1) for line in path.read_text().splitlines())
    return stat.S_IMODE(path.stat().st_mode), dict(pairs)


def _unclaimed_port() -> int:
    """A free port below Linux's ephemeral range (32768+), where no process that binds port 0
    (the sandbox's own servers, other tests) can take it between now and `run` binding it."""
    for port in random.sample(range(20_000, 32_000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "julia_chips", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _status(base: str, chip_id: str) -> str | None:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/chips/{chip_id}") as resp:
        return str((await resp.json())["status"]) if resp.status == 200 else None


async def provisioned_until_warming(nc: NATS, http_base: str, chip_id: str) -> str | None:
    """Provision `chip_id` by area code through `nc`; its status over HTTP once warming (the
    activation done), or the last one seen after a minute."""
    reply = await ChipClient(nc).send(chip_id, cmd.Provision(command_id="p", ddd=11),
                                      timeout=20)
    assert reply.ok, reply
    status = None
    for _ in range(600):
        status = await _status(http_base, chip_id)
        if status == "warming":
            break
        await asyncio.sleep(0.1)
    return status


async def test_a_run_in_another_process_activates_a_chip_through_the_sandbox(
        tmp_path: Path) -> None:
    port = _unclaimed_port()
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("NATS_URL", "DATABASE_URL", "JULIA_DATA_DIR")}
    sandbox_log, run_log = tmp_path / "sandbox.log", tmp_path / "run.log"
    sandbox = _spawn(["sandbox", "--public-url", f"http://127.0.0.1:{port}", "--hosts", "2",
                      "--doctors", "5"],
                     base_env | {"JULIA_DATA_DIR": str(tmp_path / "sandbox"),
                                 "EVOLUTION_API_KEY": GIVEN_KEY}, sandbox_log)
    run = None
    try:
        env_path = Path((await _wait_for_line(
            sandbox_log, r"written to (\S+): set -a")).group(1))
        mode, found = _env_file(env_path)
        assert mode == 0o600
        assert found["EVOLUTION_API_KEY"] == GIVEN_KEY  # taken from the environment
        log_text = _read(sandbox_log)
        for secret in ("EVOLUTION_API_KEY", "SALVY_API_TOKEN", "SALVY_WEBHOOK_SECRET",
                       "CLOUD_API_TOKEN", "CLOUD_API_APP_SECRET", "CLOUD_API_VERIFY_TOKEN",
                       "JULIA_WEBHOOK_SECRET"):
            assert found[secret] and found[secret] not in log_text, secret

        doctors_url = f"{found['EVOLUTION_API_URL']}/sandbox/doctors"
        async with aiohttp.ClientSession() as http:
            async with http.get(doctors_url) as resp:
                assert resp.status == 401
            async with http.get(doctors_url, headers={"apikey": GIVEN_KEY}) as resp:
                doctors = await resp.json()
        assert len(doctors) == 5 and all(d["phone"].startswith("+55") for d in doctors)
        assert not any(d["opted_out"] for d in doctors)

        run = _spawn(["run"], base_env | found | {"JULIA_DATA_DIR": str(tmp_path / "run"),
                                                   "JULIA_HTTP_PORT": str(port)}, run_log)
        nats_url = (await _wait_for_line(run_log, r"running \(NATS (nats://[\d.:]+)\)")).group(1)
        assert "serving the sandbox" not in _read(run_log)  # it uses the other process's
        assert "the sandbox's hosts run the shipped host scripts" in _read(sandbox_log)
        nc = await nats.connect(nats_url)
        try:
            status = await provisioned_until_warming(nc, f"http://127.0.0.1:{port}",
                                                     new_chip_id())
        finally:
            await nc.close()
        assert status == "warming", (_read(run_log)[-3000:], _read(sandbox_log)[-2000:])
    finally:
        if run is not None:
            await asyncio.to_thread(_stop, run)
        await asyncio.to_thread(_stop, sandbox)


async def test_the_phone_key_survives_a_sandbox_restart(tmp_path: Path) -> None:
    """`run` keeps opt-outs under keys made with JULIA_PHONE_KEY: a new sandbox keeps it."""
    keys = []
    for _ in range(2):
        sandbox = await start_sandbox(hosts=1, doctors=1)
        try:
            variables = sandbox_env(sandbox, tmp_path, "http://127.0.0.1:1", {})
            write_env_file(variables, tmp_path)
            keys.append(variables["JULIA_PHONE_KEY"])
        finally:
            await sandbox.close()
    assert keys[0] == keys[1] and len(keys[0]) == 32
    given = sandbox_env(sandbox, tmp_path, "http://127.0.0.1:1", {"JULIA_PHONE_KEY": "k" * 32})
    assert given["JULIA_PHONE_KEY"] == "k" * 32


async def test_the_sandbox_of_run_honours_julia_registrar(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox serves both registrars; `JULIA_REGISTRAR=cloud_api` makes `run` register
    new chips through its Cloud API, as it would in production."""
    monkeypatch.setenv("JULIA_REGISTRAR", "cloud_api")
    log = tmp_path / "run.log"
    proc = _start(tmp_path, log)
    chip = new_chip_id()
    try:
        url = (await _wait_for_line(log, r"running \(NATS (nats://[\d.:]+)\)")).group(1)
        http = (await _wait_for_line(log, r"webhooks on (http://[\d.:]+)")).group(1)
        nc = await nats.connect(url)
        try:
            status = await provisioned_until_warming(nc, http, chip)
            events, _ = await ActivationLog(nc.jetstream()).load(chip)
        finally:
            await nc.close()
        assert status == "warming", _read(log)[-3000:]
        assert "new chips registered by cloud_api" in _read(log)
        [requested] = [e for e in events if isinstance(e, ActivationRequested)]
        assert requested.registrar == "cloud_api"
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0, _read(log)


@pytest.mark.parametrize("command", ["sandbox", "run"])
@pytest.mark.parametrize(("var", "url"), [("NATS_URL", "nats://nats.prod.example:4222"),
                                          ("DATABASE_URL", "postgresql://julia@10.0.0.7/julia")])
def test_the_sandbox_refuses_servers_that_are_not_on_this_machine(
        tmp_path: Path, command: str, var: str, url: str) -> None:
    """Its made-up chips and doctors never go into a production NATS or PostgreSQL."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NATS_", "DATABASE_", "JULIA_", "SALVY_", "EVOLUTION_", "CLOUD_"))}
    env |= {"JULIA_DATA_DIR": str(tmp_path), var: url}
    refused = subprocess.run([sys.executable, "-m", "julia_chips", command], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert var in refused.stderr and "JULIA_SANDBOX_ALLOW_REMOTE=1" in refused.stderr
    assert not (tmp_path / "sandbox.env").exists()
