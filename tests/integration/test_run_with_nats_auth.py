"""`julia-chips run` with JULIA_NATS_AUTH=on: the embedded server has a user per role, the
whole system runs against it, a stranger is not let in, and an operator's chip activates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import nats
import nats.errors
import pytest

from julia_chips.chip.client import ChipClient
from julia_chips.contract import chip_commands as cmd
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.infrastructure import NatsIdentity, connect_nats
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.nats_auth.auth_conf import PASSWORDS_FILE
from tests.conftest import LEASE_TTL, PARTITIONS, new_chip_id
from tests.integration.test_run_command import _read, _start, _start_deriver, _wait_for_line
from tests.integration.test_sandbox_command import provisioned_until_warming
from tests.integration.workers import start_worker_process


async def _activated_through(log: Path, nats_url: str, chip: str) -> str | None:
    """Provision `chip` as the operator over `nats_url`; its status once warming, or the last."""
    http = (await _wait_for_line(log, r"webhooks on (http://[\d.:]+)")).group(1)
    operator = await connect_nats(nats_url, NatsIdentity(role="operator"))
    try:
        return await provisioned_until_warming(operator, http, chip)
    finally:
        await operator.close()


async def test_a_run_with_a_user_per_role_activates_a_chip_an_operator_provisions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JULIA_NATS_AUTH", "on")
    log = tmp_path / "run.log"
    proc = _start(tmp_path, log)
    try:
        address = (await _wait_for_line(log, r"running \(NATS nats://\*+@([\d.:]+)\)")).group(1)
        url = f"nats://{address}"
        passwords = tmp_path / "data" / "nats" / PASSWORDS_FILE
        assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await asyncio.wait_for(nats.connect(url, allow_reconnect=False), 5)
        password = json.loads(passwords.read_text())["operator"]
        assert password not in _read(log)
        status = await _activated_through(log, f"nats://operator:{password}@{address}",
                                          new_chip_id())
        assert status == "warming", _read(log)[-3000:]
        assert "ermissions violation" not in _read(log)
        # by default through the VPS registrar, with the scripts a real host gets
        assert "new chips registered by vps" in _read(log)
        assert "the sandbox's hosts run the shipped host scripts" in _read(log)
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0, _read(log)[-3000:]


def _start_as_system(tmp_path: Path, nats_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"JULIA_DATA_DIR": str(tmp_path / "data"), "JULIA_HTTP_PORT": "0",
            "JULIA_PARTITIONS": str(PARTITIONS), "NATS_URL": nats_url,
            "JULIA_NATS_ROLE": "system"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "julia_chips", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def test_a_run_connected_as_the_system_role_needs_nothing_more(tmp_path: Path) -> None:
    """Production's `julia-chips.service` (deploy/): every part in one process as `system`,
    against a server it did not start; nats-server logs any subject the role lacks."""
    server = EmbeddedNats(tmp_path / "nats", PARTITIONS, auth=True)
    await asyncio.to_thread(server.start)
    log = tmp_path / "run.log"
    proc = _start_as_system(tmp_path, server.url_for("system"), log)
    try:
        status = await _activated_through(log, server.url_for("operator"), new_chip_id())
        assert status == "warming", _read(log)[-3000:]
        assert "ermissions violation" not in _read(log)
        refused = [line for line in _read(tmp_path / "nats" / "nats-server.log").splitlines()
                   if " Violation - " in line]
        assert refused == [], refused[:5]
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0, _read(log)[-3000:]
        await asyncio.to_thread(server.stop)


async def test_a_worker_and_a_deriver_process_each_need_no_more_than_their_role(
        tmp_path: Path) -> None:
    """`julia-chips worker` and `julia-chips deriver` (their deploy units) as `worker` and
    `deriver`, against streams `admin` made: they start, the worker answers, and the server
    logs no subject either lacked."""
    server = EmbeddedNats(tmp_path / "nats", PARTITIONS, auth=True)
    await asyncio.to_thread(server.start)
    admin = await connect_nats(server.url_for("admin"))
    await ensure_streams(admin.jetstream(), lease_ttl=LEASE_TTL)
    await admin.close()
    worker_log, deriver_log = tmp_path / "worker.log", tmp_path / "deriver.log"
    worker = start_worker_process(server.url_for("worker"), worker_log, "w-1",
                                  {"JULIA_NATS_ROLE": "worker"})
    deriver = _start_deriver(server.url_for("deriver"), deriver_log,
                             {"JULIA_NATS_ROLE": "deriver"})
    try:
        await _wait_for_line(deriver_log, "holds lease observation-deriver")
        operator = await connect_nats(server.url_for("operator"), NatsIdentity(role="operator"))
        try:
            reply = await ChipClient(operator).send(new_chip_id(), cmd.Provision(command_id="p"),
                                                    timeout=20)
        finally:
            await operator.close()
        assert reply.ok, (reply, _read(worker_log)[-2000:])
        refused = [line for line in _read(tmp_path / "nats" / "nats-server.log").splitlines()
                   if " Violation - " in line]
        assert refused == [], refused[:5]
    finally:
        for proc in (worker, deriver):
            proc.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(proc.wait, 30) == 0
        await asyncio.to_thread(server.stop)
