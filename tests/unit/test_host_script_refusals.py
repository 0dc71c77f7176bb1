"""The shipped host scripts (`deploy/vps/`) refuse what they cannot do with one JSON reason
and a non-zero exit, and never print a key: run as the SSH client runs them, as processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from julia_chips.sandbox.vps_host import SHIPPED_SCRIPTS

SECRET_KEY, SECRET_TOKEN = "evolution-key-do-not-print", "agent-token-do-not-print"
NUMBER = "5521987654321"


def run(command: str, *args: str, env_file: Path | None = None,
        direct: bool = False) -> tuple[int, dict[str, object], str]:
    """Exit status, the one JSON object on stdout, and stderr."""
    script = SHIPPED_SCRIPTS / f"julia-gateway-{command}"
    argv = [str(script), *args] if direct else [sys.executable, str(script), *args]
    env = {"PATH": "/usr/bin:/bin", "JULIA_GATEWAY_ENV": str(env_file or "/nonexistent")}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # one JSON object, one line
    return done.returncode, json.loads(lines[0]), done.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_file(tmp_path: Path, agent_url: str, evolution_url: str = "",
             mode: int = 0o600) -> Path:
    path = tmp_path / "julia-gateway.env"
    evolution_url = evolution_url or f"http://127.0.0.1:{closed_port()}"
    path.write_text(f"# the host's services\nEVOLUTION_URL={evolution_url}\n"
                    f"EVOLUTION_API_KEY='{SECRET_KEY}'\nexport AGENT_URL={agent_url}\n"
                    f'AGENT_TOKEN="{SECRET_TOKEN}"\n')
    path.chmod(mode)
    return path


@pytest.fixture
def agent_down(tmp_path: Path) -> Path:
    """An env file whose agent (and gateway) nobody listens for."""
    return env_file(tmp_path, f"http://127.0.0.1:{closed_port()}")


@pytest.mark.parametrize(("command", "args", "named"), [
    ("request-code", ["--number", "55219876x4321"], "--number: must be 10 to 15 digits"),
    ("request-code", ["--number", "+5521987654321"], "--number: must be 10 to 15 digits"),
    ("request-code", ["--number", "552198"], "--number: must be 10 to 15 digits"),
    ("request-code", ["--number", "5521987654321; rm -rf /"], "must be 10 to 15 digits"),
    ("request-code", ["--number", "٥٥٢١٩٨٧٦٥٤٣٢١"], "must be 10 to 15 digits"),  # not ASCII
    ("request-code", [], "required: --number"),
    ("register", ["--number", NUMBER, "--code", "12345"], "--code: must be 6 digits"),
    ("register", ["--number", NUMBER, "--code", "12a456"], "--code: must be 6 digits"),
    ("register", ["--number", NUMBER], "required: --code"),
    ("release", ["--number", NUMBER, "--force"], "unrecognized arguments: --force"),
    ("status", ["--number", NUMBER], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_a_json_reason(
        command: str, args: list[str], named: str, agent_down: Path) -> None:
    status, answer, stderr = run(command, *args, env_file=agent_down)
    assert status == 2
    assert list(answer) == ["error"] and named in str(answer["error"])
    assert named in stderr


@pytest.mark.parametrize(("command", "args"), [
    ("request-code", ["--number", NUMBER]),
    ("register", ["--number", NUMBER, "--code", "123456"]),
    ("release", ["--number", NUMBER]),
])
def test_an_agent_that_is_down_is_a_json_reason_and_exit_1_without_secrets(
        command: str, args: list[str], agent_down: Path) -> None:
    status, answer, stderr = run(command, *args, env_file=agent_down)
    assert status == 1
    assert answer == {"error": "agent unreachable: Connection refused"}
    assert "agent unreachable" in stderr
    printed = json.dumps(answer) + stderr
    assert SECRET_TOKEN not in printed and SECRET_KEY not in printed and NUMBER not in printed


def test_a_gateway_that_is_down_is_reported_as_down_not_as_a_failure(agent_down: Path) -> None:
    status, answer, _ = run("status", env_file=agent_down)
    assert status == 0
    assert answer["gateway_up"] is False and answer["used_slots"] == 0
    assert "evolution unreachable" in str(answer["reason"])


def test_no_env_file_a_readable_one_or_a_missing_variable_is_exit_1(tmp_path: Path) -> None:
    status, answer, _ = run("status")
    assert status == 1 and "/nonexistent unreadable" in str(answer["error"])
    readable = env_file(tmp_path, "http://127.0.0.1:1", mode=0o644)
    status, answer, _ = run("status", env_file=readable)
    assert status == 1 and "readable by others" in str(answer["error"])
    readable.write_text("EVOLUTION_URL=http://127.0.0.1:1\nEVOLUTION_API_KEY=k\n")
    readable.chmod(0o600)
    status, answer, _ = run("release", "--number", NUMBER, env_file=readable)
    assert status == 1 and "AGENT_URL is not set in" in str(answer["error"])


def test_a_url_with_credentials_is_refused_without_printing_them(tmp_path: Path) -> None:
    with_password = env_file(tmp_path, f"http://operator:{SECRET_TOKEN}@127.0.0.1:1")
    status, answer, stderr = run("release", "--number", NUMBER, env_file=with_password)
    assert status == 1 and "AGENT_URL" in str(answer["error"])
    assert "must not carry credentials" in str(answer["error"])
    assert SECRET_TOKEN not in json.dumps(answer) + stderr


class _Agent(BaseHTTPRequestHandler):
    """An agent that answers each path with what `ANSWERS` says (status, body)."""

    ANSWERS: dict[str, tuple[int, bytes]] = {
        "/request-code": (200, b'{"requested": "yes"}'),  # not a bool
        "/register": (503, b'{"reason": "busy"}'),
        "/release": (200, b"<html>proxy error</html>"),
    }

    def do_POST(self) -> None:
        status, body = self.ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def odd_agent(tmp_path: Path) -> Iterator[Path]:
    server = HTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield env_file(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("command", "args", "reason"), [
    ("request-code", ["--number", NUMBER], "agent answered no bool 'requested'"),
    ("register", ["--number", NUMBER, "--code", "123456"], "agent answered HTTP 503"),
    ("release", ["--number", NUMBER], "agent answered something other than JSON"),
])
def test_an_agent_answer_that_is_not_the_protocol_is_exit_1(
        command: str, args: list[str], reason: str, odd_agent: Path) -> None:
    status, answer, _ = run(command, *args, env_file=odd_agent)
    assert (status, answer) == (1, {"error": reason})


def test_the_scripts_run_by_their_shebang_as_installed(agent_down: Path) -> None:
    status, answer, _ = run("request-code", "--number", "12", env_file=agent_down, direct=True)
    assert status == 2 and "must be 10 to 15 digits" in str(answer["error"])
