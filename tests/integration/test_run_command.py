"""`julia-chips run` (what `make run` calls) starts embedded NATS + PostgreSQL and a worker,
answers commands, and stops cleanly on SIGINT, keeping its data for the next run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nats

from julia_chips.chip.client import ChipClient
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.subjects import Stream, gateway_observation, gateway_raw
from tests.conftest import new_chip_id
from tests.integration.ingress_fixtures import until_stored


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def _wait_for_line(log: Path, pattern: str, timeout: float = 60) -> re.Match[str]:
    for _ in range(int(timeout * 10)):
        found = re.search(pattern, await asyncio.to_thread(_read, log))
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {_read(log)}")


def _start(tmp_path: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"JULIA_DATA_DIR": str(tmp_path / "data"), "JULIA_HTTP_PORT": "0"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "julia_chips", "run", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _start_deriver(nats_url: str, log: Path,
                   extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": nats_url, "JULIA_LEASE_TTL": "2", **(extra_env or {})}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "julia_chips", "deriver"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def _provision_through(log: Path, chip: str, command_id: str) -> cmd.CommandReply:
    url = (await _wait_for_line(log, r"running \(NATS (nats://[\d.:]+)\)")).group(1)
    nc = await nats.connect(url)
    try:
        return await ChipClient(nc).send(chip, cmd.Provision(command_id=command_id), timeout=20)
    finally:
        await nc.close()


async def test_run_serves_commands_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    chip = new_chip_id()
    for attempt, log in enumerate((tmp_path / "run1.log", tmp_path / "run2.log")):
        proc = _start(tmp_path, log)
        try:
            reply = await _provision_through(log, chip, "p-1")
            # The second run finds the first run's event: same first answer, nothing appended.
            assert reply.ok and reply.state == "provisioning", (attempt, reply)
            assert [e.seq for e in reply.events] == [1]
        finally:
            proc.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(proc.wait, 30) == 0, _read(log)
    assert "Traceback" not in _read(tmp_path / "run2.log")


async def test_run_without_the_deriver_leaves_it_to_julia_chips_deriver(tmp_path: Path) -> None:
    """`run --without deriver` takes webhooks but derives nothing; `julia-chips deriver` beside
    it derives what was stored meanwhile, and both stop cleanly."""
    run_log, deriver_log = tmp_path / "run.log", tmp_path / "deriver.log"
    proc = _start(tmp_path, run_log, "--without", "deriver")
    deriver: subprocess.Popen[bytes] | None = None
    try:
        url = (await _wait_for_line(run_log, r"running \(NATS (nats://[\d.:]+)\)")).group(1)
        assert "left to their own processes: deriver" in _read(run_log)
        nc = await nats.connect(url)
        js = nc.jetstream()
        body = (b'{"event":"connection.update","instance":"chip-0001",'
                b'"data":{"instance":"chip-0001","state":"open","statusReason":200}}')
        await js.publish(gateway_raw("evolution", "chip-0001"), body)
        await asyncio.sleep(1.0)  # a deriver in `run` would have stored it within milliseconds
        assert (await js.stream_info(Stream.GATEWAY_OBS)).state.messages == 0

        deriver = _start_deriver(url, deriver_log)
        await until_stored(js, Stream.GATEWAY_OBS, 1, timeout=20)
        stored = await js.get_msg(Stream.GATEWAY_OBS, 1)
        assert stored.subject == gateway_observation("chip-0001")
        await nc.close()
    finally:
        for part, log in ((deriver, deriver_log), (proc, run_log)):
            if part is not None:
                part.send_signal(signal.SIGINT)
                assert await asyncio.to_thread(part.wait, 30) == 0, _read(log)
    assert "Traceback" not in _read(run_log) + _read(deriver_log)
    for log in (run_log, deriver_log):  # what the imports built is out of every collection
        frozen = re.search(r"startup heap frozen: (\d+) objects", _read(log))
        assert frozen and int(frozen.group(1)) > 10_000, _read(log)
