"""The demo `make run` shows, at high speed: `julia-chips run` on the sandbox with
JULIA_DEMO=on, a warm day every 3 real seconds, 6 chips and 200 doctors. Within a bounded
real time chips go warming → ready → active, one is cooled by the health monitor (a 402
close) and one banned (a 403 close) with its consented doctors moved to other chips, and
doctors reply and opt out. Read as an operator would, through the CLI's `--json` and the
HTTP API (replies: doctors who were only prospected wrote back); the failover's own events
from ROUTE_EVENTS. A second `run` on the same data
folder provisions no second fleet."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats

from julia_chips.contract import route as rt
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.follower import body, replay

CHIPS, DOCTORS = 6, 200
RUNNING = re.compile(r"julia-chips running \(NATS (nats://[\d.:]+)\)")
HTTP = re.compile(r"HTTP read API and webhooks on (http://[\d.:]+)")
DEADLINE = 100.0  # real seconds for the whole lifecycle


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    return env | {"JULIA_DATA_DIR": str(data_dir), "JULIA_HTTP_PORT": "0", "JULIA_DEMO": "on",
                  "JULIA_DEMO_SPEED": str(86_400 / 3), "JULIA_DEMO_CHIPS": str(CHIPS),
                  "JULIA_DEMO_DOCTORS": str(DOCTORS), "WARMER_MIN_DAYS": "2"}


def _start(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "julia_chips", "run"],
                                env=_environment(data_dir), stdout=out,
                                stderr=subprocess.STDOUT)


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def _line(proc: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str]) -> str:
    deadline = time.monotonic() + 90
    while not (found := pattern.search(await asyncio.to_thread(_read, log))):
        assert proc.poll() is None and time.monotonic() < deadline, _read(log)
        await asyncio.sleep(0.2)
    return found.group(1)


def _chips(data_dir: Path) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "julia_chips", "chip", "list", "--json"],
                          capture_output=True, text=True, timeout=60,
                          env=_environment(data_dir))
    assert done.returncode == 0, done.stderr
    chips: list[dict[str, Any]] = json.loads(done.stdout)
    return chips


async def _event_types(http: aiohttp.ClientSession, url: str, chip: str) -> list[str]:
    async with http.get(f"{url}/chips/{chip}/events", params={"limit": "500"}) as resp:
        assert resp.status == 200, await resp.text()
        return [item["type"] for item in (await resp.json())["items"]]


async def _doctors(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    found = []
    for n in range(DOCTORS):
        async with http.get(f"{url}/doctors/doc-{n:04d}") as resp:
            if resp.status == 200:
                found.append(await resp.json())
    return found


async def _doctors_replied(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """The doctors once a few who were only prospected wrote back (and so consented)."""
    deadline = time.monotonic() + 30
    while True:
        doctors = await _doctors(http, url)
        if sum(d["replied_at"] is not None for d in doctors) >= 3:
            return doctors
        assert time.monotonic() < deadline, doctors
        await asyncio.sleep(2)


async def _lifecycle_shown(data_dir: Path, http: aiohttp.ClientSession, url: str
                           ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The chips and their event types once every state the demo promises was reached."""
    deadline = time.monotonic() + DEADLINE
    while True:
        chips = await asyncio.to_thread(_chips, data_dir)
        statuses = {c["status"] for c in chips}
        history = {c["id"]: await _event_types(http, url, c["id"]) for c in chips}
        passed = [c for c, types in history.items()
                  if {"Activated", "Ready", "InService"} <= set(types)]
        cooled = [c for c, types in history.items() if "Cooled" in types]
        if {"banned", "active"} <= statuses and passed and cooled:
            return chips, history
        assert time.monotonic() < deadline, (statuses, history)
        await asyncio.sleep(2)


async def _reassigned_from(nats_url: str, chip: str) -> list[rt.ConversationReassigned]:
    nc = await nats.connect(nats_url)
    moved: list[rt.ConversationReassigned] = []

    def keep(_seq: int, event: rt.AnyRouteEvent) -> None:
        if isinstance(event, rt.ConversationReassigned) and event.from_chip_id == chip:
            moved.append(event)

    try:
        await replay(nc.jetstream(), Stream.ROUTE_EVENTS, "route.evt.>",
                     body(rt.decode_route_event), keep, reader="test")
    finally:
        await nc.close()
    return moved


async def test_the_demo_shows_the_whole_lifecycle_and_a_restart_adds_no_chips(
        tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "run.log"
    started = time.monotonic()
    proc = _start(data_dir, log)
    try:
        nats_url = await _line(proc, log, RUNNING)
        url = await _line(proc, log, HTTP)
        told = await asyncio.to_thread(_read, log)
        assert f"dashboard  {url}/" in told and "no token: loopback only" in told
        assert f"{CHIPS} chips, {DOCTORS} sandbox doctors" in told
        async with aiohttp.ClientSession() as http:
            chips, history = await _lifecycle_shown(data_dir, http, url)
            assert len(chips) == CHIPS
            assert all(types[:2] == ["Provisioned", "ActivationStarted"]
                       for types in history.values())
            [banned] = [c["id"] for c in chips if c["status"] == "banned"]
            moved = [m for m in await _reassigned_from(nats_url, banned)
                     if "(banned)" in m.reason]  # not the moves when it became ready
            assert moved and all(m.consented for m in moved)  # the prospected stay put
            assert len({m.doctor_id for m in moved}) == len(moved)
            doctors = await _doctors_replied(http, url)
            # an opted-out doctor is handed to nobody: the chip that heard "PARAR" keeps them
            assert all(d["chip_id"] != banned for d in doctors if not d["opted_out"])
            assert any(d["opted_out"] and d["opted_out_source"] == "keyword" for d in doctors)
            async with http.get(f"{url}/health") as resp:
                assert (await resp.json())["parts"]["demo"]["running"]
        elapsed = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0, _read(log)
    assert "Traceback" not in _read(log)
    assert elapsed < DEADLINE + 30, elapsed

    again = tmp_path / "run2.log"
    proc = _start(data_dir, again)
    try:
        await _line(proc, again, RUNNING)
        await asyncio.sleep(3)  # the demo has read the fleet and would provision by now
        assert len(await asyncio.to_thread(_chips, data_dir)) == CHIPS
        assert "demo: provisioning" not in _read(again)
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0, _read(again)
