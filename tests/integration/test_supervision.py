"""Supervised parts against real servers: a part that fails is restarted with backoff and
logged by name; `/health` lists the parts and answers 503 once one has been down past the
grace; a part that cannot recover makes `julia-chips run` exit 1, for systemd to restart it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.js.client import JetStreamContext

from julia_chips.app import start_http
from julia_chips.clock import FixedClock
from julia_chips.config import Config
from julia_chips.embedded.nats_server import NATS_CONF, EmbeddedNats
from julia_chips.http.app import create_app
from julia_chips.http.keys import SUPERVISOR
from julia_chips.supervisor import SupervisionPolicy, Supervisor
from tests.conftest import PARTITIONS

FAST = SupervisionPolicy(first_backoff=0.1, max_backoff=0.4, max_restarts=10, stable_after=60)


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (the parts run real I/O meanwhile)
            await asyncio.sleep(0.02)


async def test_a_failing_part_is_restarted_with_backoff_and_logged_by_name(
        js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    clock = FixedClock(datetime.now(UTC))
    supervisor = Supervisor(clock, FAST)
    stop, recovered = asyncio.Event(), asyncio.Event()
    starts: list[float] = []

    async def stream_reader() -> None:
        starts.append(time.monotonic())
        await js.stream_info("SUPERVISED")  # NotFoundError until the stream exists
        recovered.set()
        await stop.wait()

    caplog.set_level(logging.INFO, logger="julia_chips.supervisor")
    task = supervisor.start("stream reader", stream_reader, stop)
    await _until(lambda: len(starts) >= 5)
    await js.add_stream(name="SUPERVISED", subjects=["supervised.>"])
    await asyncio.wait_for(recovered.wait(), 10)

    failures = len(starts) - 1
    said = [r for r in caplog.records if r.getMessage().startswith("part stream reader failed")]
    assert len(said) == failures and all(r.exc_info for r in said), caplog.text
    assert all("NotFoundError" in r.getMessage() for r in said)
    delays = [float(re.search(r"restarting in ([\d.]+)s", r.getMessage()).group(1))  # type: ignore[union-attr]
              for r in said]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]  # doubled, then capped
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, delays, strict=True)), gaps

    status = supervisor.status()["stream reader"]
    assert status.running and status.restarts == failures
    assert status.restarting_since == clock.now()  # not yet running long enough to count
    assert status.last_error is not None and status.last_error.startswith("NotFoundError")
    clock.advance(timedelta(seconds=FAST.stable_after))
    assert supervisor.status()["stream reader"].restarting_since is None

    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(starts) == failures + 1  # ended by `stop`: not restarted
    assert not supervisor.status()["stream reader"].running
    assert supervisor.gave_up_on is None


async def test_a_part_that_cannot_recover_is_given_up_and_the_others_stop_cleanly(
        js: JetStreamContext, caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(FixedClock(datetime.now(UTC)),
                            SupervisionPolicy(first_backoff=0.05, max_restarts=2))
    stop = asyncio.Event()
    steady_runs = 0

    async def steady() -> None:
        nonlocal steady_runs
        steady_runs += 1
        await stop.wait()

    async def reader_of_a_missing_stream() -> None:
        await js.stream_info("MISSING")

    tasks = [supervisor.start("steady", steady, stop),
             supervisor.start("reader", reader_of_a_missing_stream, stop)]
    assert not await asyncio.wait_for(supervisor.until_stopped(stop), 10)
    assert stop.is_set()  # the other parts are told to stop
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert supervisor.gave_up_on == "reader" and steady_runs == 1
    assert supervisor.status()["reader"].restarts == 2
    assert "part reader failed (NotFoundError" in caplog.text
    assert "cannot recover after 2 restarts: giving up" in caplog.text


async def _health(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def test_health_lists_the_parts_and_says_503_once_one_is_down_past_the_grace(
        js: JetStreamContext, nats_url: str, database_url: str) -> None:
    clock = FixedClock(datetime.now(UTC))
    supervisor = Supervisor(clock, SupervisionPolicy(first_backoff=30))  # stays down meanwhile
    stop = asyncio.Event()

    async def reader_of_a_missing_stream() -> None:
        await js.stream_info("MISSING")

    tasks = [supervisor.start("steady", stop.wait, stop),
             supervisor.start("reader", reader_of_a_missing_stream, stop)]
    app = create_app(Config(nats_url=nats_url, database_url=database_url, part_grace=60), clock)
    app[SUPERVISOR] = supervisor
    runner, port = await start_http(app, 0)
    try:
        await _until(lambda: supervisor.status()["reader"].last_error is not None)
        failed_at = clock.now()
        status, body = await _health(f"http://127.0.0.1:{port}/health")
        assert status == 200 and body["status"] == "ok", body
        assert body["parts"]["steady"] == {"running": True, "restarting_since": None,
                                           "last_error": None, "restarts": 0}
        reader = body["parts"]["reader"]
        assert reader["running"] is False and reader["restarts"] == 0
        assert datetime.fromisoformat(reader["restarting_since"]) == failed_at
        assert reader["last_error"].startswith("NotFoundError")

        clock.advance(timedelta(seconds=61))  # past JULIA_PART_GRACE
        status, body = await _health(f"http://127.0.0.1:{port}/health")
        assert status == 503 and body["status"] == "degraded", body
        assert body["nats"] is True and body["postgres"] is True
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await runner.cleanup()


# A NATS user that may not create consumers on CHIP_EVENTS: the parts that follow it (warmer
# scheduler, health monitor, activator, balancer, doctor feedback) cannot start, however often
# they are restarted.
_NO_CHIP_EVENT_CONSUMERS = """
authorization {
  users = [{user: julia, password: %s, permissions: {publish: {deny: [
    "$JS.API.CONSUMER.CREATE.CHIP_EVENTS", "$JS.API.CONSUMER.CREATE.CHIP_EVENTS.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.CHIP_EVENTS.>"]}}}]
}
"""


def _start_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "julia_chips", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
async def test_run_exits_1_when_a_part_cannot_recover(tmp_path: Path, database_url: str) -> None:
    password = "s3cret-of-the-test"
    conf = tmp_path / "nats.conf"
    conf.write_text(NATS_CONF.read_text() + _NO_CHIP_EVENT_CONSUMERS % password)
    server = EmbeddedNats(tmp_path / "nats", PARTITIONS, conf=conf)
    server.start()
    log = tmp_path / "run.log"
    env = {**os.environ, "NATS_URL": f"nats://julia:{password}@127.0.0.1:{server.port}",
           "DATABASE_URL": database_url, "JULIA_PARTITIONS": str(PARTITIONS),
           "JULIA_DATA_DIR": str(tmp_path / "data"), "JULIA_HTTP_PORT": "0",
           "JULIA_LEASE_TTL": "2", "JULIA_MAX_RESTARTS": "1"}
    try:
        proc = _start_run(env, log)
        try:
            code = await asyncio.to_thread(proc.wait, 90)
        finally:
            proc.kill()
    finally:
        server.stop()
    text = log.read_text()
    assert code == 1, text
    parts = "(warmer scheduler|health monitor|activator|doctor feedback|balancer)"
    assert re.search(rf"part {parts} failed \(TimeoutError.*\); restarting in 0\.5s", text), text
    assert re.search(rf"part {parts} failed .* cannot recover after 1 restarts: giving up",
                     text), text
    assert "stopping" in text and password not in text
