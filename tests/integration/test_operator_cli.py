"""The operator CLI as an operator runs it: `python -m julia_chips <group> ...` in a process
of its own against one `julia-chips run` (embedded NATS and PostgreSQL, the sandbox for the
outside world), found through the data folder as `make run` leaves it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from julia_chips.jetstream.dead_letters import send_to_dead_letters

RUNNING = re.compile(r"julia-chips running \(NATS nats://[\d.:]+\)")
PHONE = re.compile(r"\+?55\d{10,11}")  # an unmasked Brazilian number, as the sandbox buys them


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    return env | {"JULIA_DATA_DIR": str(data_dir), "JULIA_HTTP_PORT": "0"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The data folder of one `julia-chips run` shared by this module (each start costs
    seconds); stopped with SIGINT at the end, as Ctrl-C would."""
    folder = tmp_path_factory.mktemp("cli")
    log = folder / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "julia_chips", "run"],
                                env=_environment(folder / "data"), stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not RUNNING.search(log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield folder / "data"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "julia_chips", *args], capture_output=True,
                          text=True, timeout=60, env=env or _environment(data_dir))


def cli_json(data_dir: Path, *args: str) -> Any:
    done = cli(data_dir, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _until_status(data_dir: Path, chip: str, status: str, timeout: float = 60) -> Any:
    """The chip's read-model row once it shows `status` (projections follow the events)."""
    deadline = time.monotonic() + timeout
    while True:
        done = cli(data_dir, "chip", "show", chip, "--json")
        if done.returncode == 0 and (row := json.loads(done.stdout))["status"] == status:
            return row
        assert time.monotonic() < deadline, (done.stdout, done.stderr)
        time.sleep(0.3)


def _provision(data_dir: Path) -> str:
    reply = cli_json(data_dir, "chip", "provision", "--ddd", "11")
    assert reply["ok"] and reply["state"] == "provisioning", reply
    assert [e["type"] for e in reply["events"]] == ["Provisioned"]
    return str(reply["chip_id"])


def test_a_chip_is_provisioned_listed_shown_cooled_resumed_and_retired(data_dir: Path) -> None:
    chip, other = _provision(data_dir), _provision(data_dir)  # two, for a second page
    row = _until_status(data_dir, chip, "warming")  # the sandbox bought and linked a number
    phone = row["phone_number"]
    assert PHONE.fullmatch(phone), row  # --json carries what the HTTP API carries

    listed = cli_json(data_dir, "chip", "list")
    assert isinstance(listed, list) and {chip, other} <= {c["id"] for c in listed}
    first = cli(data_dir, "chip", "list", "--limit", "1")
    assert f"more follow: --after {listed[0]['id']}" in first.stdout, first.stdout
    paged = cli_json(data_dir, "chip", "list", "--limit", "1", "--after", listed[0]["id"])
    assert [c["id"] for c in paged] == [listed[1]["id"]]
    table = cli(data_dir, "chip", "list", "--status", "warming")
    assert table.returncode == 0 and chip in table.stdout
    assert phone not in table.stdout and f"{phone[:3]} {phone[3:5]} " in table.stdout
    assert not PHONE.search(table.stdout)
    shown = cli(data_dir, "chip", "show", chip)
    assert shown.returncode == 0 and "warming" in shown.stdout and "doctors" in shown.stdout
    assert not PHONE.search(shown.stdout)

    cooled = cli(data_dir, "chip", "cool", chip, "--reason", "operator checks the number")
    assert cooled.returncode == 0 and f"chip {chip}: cooling (Cooled #" in cooled.stdout
    _until_status(data_dir, chip, "cooling")
    resumed = cli(data_dir, "chip", "resume", chip)
    assert resumed.returncode == 0 and "warming (Resumed #" in resumed.stdout
    retired = cli_json(data_dir, "chip", "retire", chip, "--reason", "number returned")
    assert retired["ok"] and retired["state"] == "retired"
    assert [e["type"] for e in retired["events"]] == ["Retired"]
    assert _until_status(data_dir, chip, "retired")["retired_at"] is not None


def test_a_refused_move_exits_non_zero_with_the_rule_and_the_allowed_moves(
        data_dir: Path) -> None:
    chip = _provision(data_dir)
    done = cli(data_dir, "chip", "provision")  # for people: the id in one line
    found = re.search(r"chip ([0-9a-f-]{36}): provisioning \(Provisioned #\d+\)", done.stdout)
    assert done.returncode == 0 and found, done
    refused = cli(data_dir, "chip", "reinstate", chip)
    assert refused.returncode == 1, refused
    assert "refused: Reinstate is not accepted" in refused.stderr
    assert "allowed: " in refused.stderr and "retired" in refused.stderr
    as_json = cli(data_dir, "chip", "reinstate", chip, "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["ok"] is False
    bad = cli(data_dir, "chip", "provision", "--phone", "12")
    assert bad.returncode == 1 and "$.phone_number" in bad.stderr  # never sent
    not_an_id = cli(data_dir, "chip", "resume", "chip-1")
    assert not_an_id.returncode == 2 and "not a chip id" in not_an_id.stderr


def test_events_replay_prints_a_chips_history(data_dir: Path) -> None:
    chip = _provision(data_dir)
    _until_status(data_dir, chip, "warming")
    assert cli(data_dir, "chip", "cool", chip, "--reason", "rest").returncode == 0
    history = cli_json(data_dir, "events", "replay", "--chip", chip)
    types = [e["type"] for e in history]
    assert types[0] == "Provisioned" and types[-1] == "Cooled" and "Activated" in types
    assert [e["seq"] for e in history] == sorted(e["seq"] for e in history)
    table = cli(data_dir, "events", "replay", "--chip", chip)
    assert table.returncode == 0 and "Cooled" in table.stdout and "reason=rest" in table.stdout
    assert not PHONE.search(table.stdout)
    later = cli_json(data_dir, "events", "replay", "--chip", chip,
                     "--since", history[-1]["occurred_at"])
    assert [e["type"] for e in later] == ["Cooled"]
    unknown = cli(data_dir, "events", "replay", "--chip", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 1 and "has no events" in unknown.stderr


def test_a_doctor_is_opted_out_refused_a_send_and_opted_back_in(data_dir: Path) -> None:
    doctor = f"dr-cli-{time.monotonic_ns()}"
    opted_out = cli(data_dir, "route", "optout", doctor, "--source", "phone call")
    assert opted_out.returncode == 0 and "opted_out" in opted_out.stdout, opted_out
    refused = cli(data_dir, "route", "send", doctor, "--phone", "+5511987654321",
                  "--text", "Plantão amanhã?", "--kind", "prospecting")
    assert refused.returncode == 1 and "opted out" in refused.stderr, refused
    assert "(opted_out)" in refused.stderr and "5511987654321" not in refused.stderr
    deadline = time.monotonic() + 30
    while (view := cli(data_dir, "route", "show", doctor, "--json")).returncode != 0:
        assert time.monotonic() < deadline, view.stderr
        time.sleep(0.3)
    assert json.loads(view.stdout)["opted_out"] is True
    assert cli_json(data_dir, "route", "optin", doctor)["status"] == "opted_in"
    unknown = cli(data_dir, "route", "show", "dr-never-routed")
    assert unknown.returncode == 1 and "has been routed" in unknown.stderr


def test_a_banned_chip_is_reinstated_and_warms_up_anew(data_dir: Path) -> None:
    chip = _provision(data_dir)
    _until_status(data_dir, chip, "warming")
    again = cli(data_dir, "chip", "retry-activation", chip)  # only an activating chip may
    assert again.returncode == 1 and "RetryActivation is not accepted" in again.stderr, again
    banned = cli(data_dir, "chip", "ban", chip, "--reason", "blocked by WhatsApp",
                 "--evidence", "connection.update 401")
    assert banned.returncode == 0 and "banned (Banned #" in banned.stdout, banned
    reinstated = cli(data_dir, "chip", "reinstate", chip)
    assert reinstated.returncode == 0 and "warming (Reinstated #" in reinstated.stdout


def test_events_tail_follows_new_events_of_one_type_until_ctrl_c(data_dir: Path) -> None:
    chip = _provision(data_dir)
    _until_status(data_dir, chip, "warming")
    tail = subprocess.Popen(
        [sys.executable, "-m", "julia_chips", "events", "tail", "--chip", chip, "--type",
         "Cooled", "--json"], env=_environment(data_dir), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stderr is not None and tail.stdout is not None
        assert "following chip.evt." in tail.stderr.readline()
        assert cli(data_dir, "chip", "cool", chip, "--reason", "live").returncode == 0
        event = json.loads(tail.stdout.readline())
        assert event["type"] == "Cooled" and event["event"]["chip_id"] == chip
        assert cli(data_dir, "chip", "resume", chip).returncode == 0  # not a Cooled: not shown
        assert cli_json(data_dir, "events", "replay", "--chip", chip)[-1]["type"] == "Resumed"
    finally:
        tail.send_signal(signal.SIGINT)
        rest, _ = tail.communicate(timeout=30)
    assert tail.returncode == 0 and rest == ""


def _store_dead_letter(data_dir: Path, key: str, body: bytes) -> None:
    nats_url = json.loads((data_dir / "endpoints.json").read_text())["nats_url"]

    async def store() -> None:
        nc = await nats.connect(nats_url)
        await send_to_dead_letters(nc.jetstream(), "obs", key, body, "cannot be derived",
                                   f"gw.obs.{key}")
        await nc.close()

    asyncio.run(store())


def test_dead_letters_are_listed_shown_masked_and_purged(data_dir: Path) -> None:
    key = f"cli-{time.monotonic_ns()}"
    _store_dead_letter(data_dir, key, b'{"number":"+5511987654321","text":"oi"}')
    listed = cli_json(data_dir, "dlq", "list", "--kind", "obs", "--key", key)
    assert listed["ok"] is True and [d["reason"] for d in listed["letters"]] == [
        "cannot be derived"]
    seq = str(listed["letters"][0]["seq"])
    assert "body" not in listed["letters"][0]
    table = cli(data_dir, "dlq", "show", seq)
    assert table.returncode == 0 and "+55 11 *******21" in table.stdout
    assert "5511987654321" not in table.stdout
    assert "5511987654321" in cli_json(data_dir, "dlq", "show", seq)["letter"]["body"]
    unclear = cli(data_dir, "dlq", "replay")  # neither a seq nor --all: the desk refuses
    assert unclear.returncode == 1 and "refused:" in unclear.stderr
    purged = cli(data_dir, "dlq", "purge", "--kind", "obs", "--key", key)
    assert purged.returncode == 0 and "purged 1" in purged.stdout, purged
    assert cli_json(data_dir, "dlq", "list", "--kind", "obs", "--key", key)["letters"] == []
    missing = cli(data_dir, "dlq", "show", "999999")
    assert missing.returncode == 1 and "refused:" in missing.stderr


def test_unknown_sends_and_the_brake_are_shown_and_the_brake_released(data_dir: Path) -> None:
    sends = cli_json(data_dir, "sends", "unknown")
    assert sends["ok"] is True and sends["sends"] == []
    assert "sends left unknown: 0" in cli(data_dir, "sends", "unknown").stdout
    settle = cli(data_dir, "sends", "settle", "00000000-0000-4000-8000-000000000000",
                 "attempt-1", "--verdict", "delivered")
    assert settle.returncode == 1 and "refused:" in settle.stderr, settle
    brake = cli(data_dir, "brake", "status")
    assert brake.returncode == 0 and "fleet brake" in brake.stdout and "engaged" in brake.stdout
    assert cli_json(data_dir, "brake", "status")["brake"]["engaged"] is False
    released = cli(data_dir, "brake", "release")
    assert released.returncode == 0 and "released" in released.stdout, released


def test_an_unreachable_system_exits_non_zero_naming_the_url(tmp_path: Path) -> None:
    nowhere = cli(tmp_path, "chip", "list")
    assert nowhere.returncode == 2 and "no running system" in nowhere.stderr
    assert str(tmp_path / "endpoints.json") in nowhere.stderr
    env = _environment(tmp_path) | {"NATS_URL": "nats://127.0.0.1:9"}
    dead = cli(tmp_path, "chip", "retire", "00000000-0000-4000-8000-000000000000",
               "--reason", "gone", env=env)
    assert dead.returncode == 2 and "NATS at nats://127.0.0.1:9 unreachable" in dead.stderr


def _http_url(data_dir: Path) -> str:
    found = re.search(r"HTTP read API and webhooks on (http://[\d.:]+)",
                      (data_dir.parent / "run.log").read_text())
    assert found, "run did not say where its HTTP API is"
    return found.group(1)


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async def post() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
            return resp.status, await resp.json()

    return asyncio.run(post())


def test_the_http_operator_endpoints_mirror_the_cli_on_consent_and_dead_letters(
        data_dir: Path) -> None:
    base, doctor = _http_url(data_dir), f"dr-http-{time.monotonic_ns()}"
    status, reply = _post(f"{base}/operator/doctors/{doctor}/optout", {"source": "e-mail"})
    assert (status, reply["status"]) == (200, "opted_out"), reply
    refused = cli(data_dir, "route", "send", doctor, "--phone", "+5511987654321",
                  "--text", "Plantão amanhã?", "--kind", "prospecting")
    assert refused.returncode == 1 and "opted out" in refused.stderr, refused
    status, reply = _post(f"{base}/operator/doctors/{doctor}/optin", {"extra": 1})
    assert status == 400 and reply["field"] == "extra", reply  # strict: nothing sent
    status, reply = _post(f"{base}/operator/doctors/{doctor}/optin", {})
    assert (status, reply["status"]) == (200, "opted_in"), reply
    key = f"http-{time.monotonic_ns()}"
    _store_dead_letter(data_dir, key, b'{"not":"an observation"}')
    status, reply = _post(f"{base}/operator/dead-letters/replay", {"kind": "obs", "key": key})
    assert status == 409 and "all" in reply["error"], reply  # neither a seq nor all
    status, reply = _post(f"{base}/operator/dead-letters/replay",
                          {"kind": "obs", "key": key, "all": True})
    assert (status, reply["replayed"]) == (200, 1), reply
    status, reply = _post(f"{base}/operator/dead-letters/purge", {"kind": "obs", "key": key})
    assert status == 200, reply
    status, reply = _post(f"{base}/operator/sends/settle", {"chip_id": "not-a-uuid"})
    assert status == 400 and reply["field"], reply


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_python_client_example_runs_as_the_readme_shows(data_dir: Path) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "python_client.py")],
                          capture_output=True, text=True, timeout=60,
                          env=_environment(data_dir))
    assert done.returncode == 0, done.stderr
    assert re.search(r"provision [0-9a-f-]{36}: ok=True state=provisioning", done.stdout)
    assert "event: Provisioned" in done.stdout and "status=opted_out" in done.stdout


def test_the_node_client_example_runs_with_the_npm_registrys_nats_client(
        data_dir: Path, tmp_path: Path) -> None:
    """Installed from the npm registry into a folder of its own, as its README line says."""
    for name in ("package.json", "client.mjs"):
        (tmp_path / name).write_bytes((EXAMPLES / "node" / name).read_bytes())
    installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert installed.returncode == 0, installed.stderr
    nats_url = json.loads((data_dir / "endpoints.json").read_text())["nats_url"]
    done = subprocess.run(["node", "client.mjs"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=os.environ | {"NATS_URL": nats_url})
    assert done.returncode == 0, done.stderr
    assert re.search(r"provision [0-9a-f-]{36}: ok=true state=provisioning", done.stdout)
    assert "event: Provisioned" in done.stdout


def test_a_doctor_is_erased_by_phone_the_phone_masked_and_a_bad_phone_refused(
        data_dir: Path) -> None:
    doctor = f"dr-erase-{time.monotonic_ns()}"
    cli(data_dir, "route", "optout", doctor, "--source", "phone call")
    report = cli_json(data_dir, "doctor", "erase", "--doctor-id", doctor)
    assert report["ok"] is True and report["doctor_ids"] == [doctor], report
    assert report["balancer_forgot"] == 1 and set(report["deleted"]) >= {"GATEWAY_IN"}
    table = cli(data_dir, "doctor", "erase", "--phone", "+5511912345678")
    assert table.returncode == 0 and "+55 11 *******78" in table.stdout, table
    assert "5511912345678" not in table.stdout
    bad = cli(data_dir, "doctor", "erase", "--phone", "11 91234-5678")
    assert bad.returncode == 1 and "$.phone" in bad.stderr, bad
    both = cli(data_dir, "doctor", "erase", "--phone", "+5511912345678", "--doctor-id", "x")
    assert both.returncode == 2 and "not allowed with" in both.stderr
