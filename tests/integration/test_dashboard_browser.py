"""The dashboard in a real browser: headless Chromium from Debian's `chromium` package,
driven by Playwright (which downloads no browser here: `executable_path`), against one
`julia-chips run` (embedded NATS and PostgreSQL, the sandbox for the outside world).

It signs in with `?token=`, checks the page against the API (`/chips` counts by state),
moves chips through the operator endpoints and waits for the page to change by itself
(server-sent events, no reload), and saves the screenshots the README shows to docs/img/.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from julia_chips.contract.chip import Status

CHROMIUM = Path("/usr/bin/chromium")
# Closed network here: without these Chromium stalls on connections it may not make.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
READER, OPERATOR = "dashboard-read-token", "dashboard-operator-token"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
HTTP = re.compile(r"HTTP read API and webhooks on (http://[\d.:]+)")
LIVE = 10_000  # ms a live change may take to show


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `julia-chips run` with both tokens set; its HTTP base URL."""
    folder = tmp_path_factory.mktemp("dashboard")
    log = folder / "run.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"JULIA_DATA_DIR": str(folder / "data"), "JULIA_HTTP_PORT": "0",
            "JULIA_API_TOKEN": READER, "JULIA_OPERATOR_TOKEN": OPERATOR, "JULIA_DEMO": "off"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "julia_chips", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        found = None
        for _ in range(900):
            text = log.read_text()
            found = HTTP.search(text)
            if found and "julia-chips running" in text:
                break
            assert proc.poll() is None, text
            time.sleep(0.1)
        assert found, log.read_text()
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():  # `make test` installs it; a silent skip would hide the test
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium with a fresh profile."""
    with tempfile.TemporaryDirectory() as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 860})
            yield context
            await context.close()


async def _api(base: str, path: str, body: Any = None) -> Any:
    token = OPERATOR if body is not None else READER
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        call = s.post(base + path, json=body) if body is not None else s.get(base + path)
        async with call as resp:
            assert resp.status == 200, (path, resp.status, await resp.text())
            return await resp.json()


async def _fleet_until(base: str, chips: list[str], status: str, timeout: float = 60) -> None:
    """Until the read model shows every chip in `status` (the sandbox links each number)."""
    async with asyncio.timeout(timeout):
        while True:
            page = await _api(base, f"/chips?status={status}&limit=500")
            if set(chips) <= {c["id"] for c in page["items"]}:
                return
            await asyncio.sleep(0.3)


async def _counts_shown(page: Page) -> dict[str, int]:
    return {s.value: int(await page.text_content(f"#count-{s.value}") or "-1") for s in Status}


async def _counts_in_api(base: str) -> dict[str, int]:
    return {s.value: (await _api(base, f"/chips?status={s.value}&limit=1"))["total"]
            for s in Status}


async def test_the_dashboard_shows_the_fleet_and_follows_it_live(
        system: str, browser: BrowserContext) -> None:
    base = system
    chips = [(await _api(base, "/operator/chips", {"ddd": ddd}))["chip_id"]
             for ddd in (11, 11, 11, 21, 21, 41)]
    await _fleet_until(base, chips, "warming")
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(f"{base}/?token={READER}")
    assert page.url == f"{base}/"  # the token left the address bar for a cookie
    await page.wait_for_selector("#live.on", timeout=LIVE)
    assert await _counts_shown(page) == await _counts_in_api(base)
    rows = await page.eval_on_selector_all(
        "#chips tbody tr", "rows => rows.map(r => [r.dataset.chip, r.dataset.status])")
    listed = (await _api(base, "/chips?limit=500"))["items"]
    assert sorted(rows) == sorted([c["id"], c["status"]] for c in listed)
    await page.evaluate("window.sameDocument = true")  # gone if the page reloads

    cooled, banned = chips[0], chips[1]
    await _api(base, f"/operator/chips/{cooled}/cool", {"reason": "operator rests it"})
    await page.wait_for_selector(f'#chips tr[data-chip="{cooled}"][data-status=cooling]',
                                 timeout=LIVE)
    await _api(base, f"/operator/chips/{banned}/ban",
               {"reason": "blocked", "evidence": "403 on connect"})
    await page.wait_for_selector(f'#chips tr[data-chip="{banned}"][data-status=banned]',
                                 timeout=LIVE)
    await page.wait_for_function(
        "document.getElementById('bans-7d').textContent === '1'", timeout=LIVE)
    assert await page.evaluate("window.sameDocument") is True
    await _fleet_until(base, [cooled], "cooling")
    await _fleet_until(base, [banned], "banned")
    assert await _counts_shown(page) == await _counts_in_api(base)
    assert "Cooled → cooling" in (await page.text_content("#ticker") or "")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True,
                              animations="disabled")

    await page.click(f'#chips tr[data-chip="{cooled}"] a')
    await page.wait_for_url(f"{base}/ui/chips/{cooled}")
    await page.wait_for_selector("#live.on", timeout=LIVE)
    assert await page.text_content("#chip-status") == "cooling"
    await _api(base, f"/operator/chips/{cooled}/resume", {})
    await page.wait_for_selector("#chip-status.s-warming", timeout=LIVE)
    await page.wait_for_selector("#facts dd[data-field=cool_reason]:empty", timeout=LIVE)
    await page.wait_for_function(
        "document.querySelector('#events tbody tr td.type').textContent === 'Resumed'",
        timeout=LIVE)
    history = await page.eval_on_selector_all("#events tbody td.type",
                                              "cells => cells.map(c => c.textContent)")
    assert history[:2] == ["Resumed", "Cooled"] and history[-1] == "Provisioned"
    await page.screenshot(path=str(SCREENSHOTS / "chip.png"), full_page=True,
                              animations="disabled")
    assert errors == []
