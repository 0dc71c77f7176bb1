"""A sandbox VPS host: a real asyncssh server on 127.0.0.1 that answers the gateway commands.

It generates its host key at start and accepts exactly one client public key, so the
adapter's host-key pinning and key auth are exercised for real. Two ways to answer:

- in Python (the default of `start_sandbox`, for tests that set `used_slots` by hand);
- by running the SHIPPED scripts (`deploy/vps/julia-gateway-*`, `run_scripts`) as
  subprocesses, with an env file pointing at this host's own Evolution API listener and its
  registration agent (`host_agent.py`, answering from this object's state): what `run` and
  `julia-chips sandbox` use, so the scripts a real host gets are the ones exercised.

Faults: `delay` (answers late), `gateway_up = False` (status says so; with the scripts the
host's Evolution listener answers 503), `kill` (stops listening: connections are refused).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import msgspec

from julia_chips.gateways.vps.client import DEFAULT_COMMANDS, HostCommands
from julia_chips.gateways.vps.hosts import VpsHost

log = logging.getLogger(__name__)
CodeSender = Callable[[str], str | None]  # digits-only number -> the code WhatsApp texted
_ENCODER = msgspec.json.Encoder()
# src/julia_chips/sandbox/ -> the checkout's deploy/vps/, where the host scripts ship
SHIPPED_SCRIPTS = Path(__file__).resolve().parents[3] / "deploy" / "vps"


def shipped_scripts() -> Path | None:
    """The folder of the host scripts in this checkout; None for an install without one."""
    return SHIPPED_SCRIPTS if (SHIPPED_SCRIPTS / "julia_gateway.py").is_file() else None


def host_scripts() -> Path | None:
    """What `run`'s sandbox and `julia-chips sandbox` give their hosts: the shipped scripts,
    or, where the package was installed without its checkout, the Python answers (said once)."""
    found = shipped_scripts()
    if found is None:
        log.warning("no deploy/vps/ beside the package: the sandbox's hosts answer in Python, "
                    "not with the shipped host scripts")
    else:
        log.info("the sandbox's hosts run the shipped host scripts in %s", found)
    return found


@dataclass(frozen=True)
class HostServices:
    """What a host's env file (`/etc/julia-gateway.env` on a real one) points the scripts at."""

    evolution_url: str
    evolution_api_key: str
    agent_url: str
    agent_token: str

    def env_file(self) -> str:
        return (f"EVOLUTION_URL={shlex.quote(self.evolution_url)}\n"
                f"EVOLUTION_API_KEY={shlex.quote(self.evolution_api_key)}\n"
                f"AGENT_URL={shlex.quote(self.agent_url)}\n"
                f"AGENT_TOKEN={shlex.quote(self.agent_token)}\n")


class SandboxVpsHost:
    """One simulated host; `codes` maps numbers to the code WhatsApp sent them."""

    def __init__(
        self,
        name: str,
        *,
        client_key: asyncssh.SSHKey,
        capacity: int = 10,
        used_slots: int = 0,
        commands: HostCommands = DEFAULT_COMMANDS,
        send_code: CodeSender | None = None,
    ) -> None:
        """:param send_code: delivers the WhatsApp SMS (the Salvy sandbox); without it the
        host only remembers the code, which tests read from `codes`."""
        self.name = name
        self.capacity = capacity
        self.used_slots = used_slots
        self.gateway_up = True
        self.delay = 0.0
        self.codes: dict[str, str] = {}
        self.registered: set[str] = set()  # numbers holding a slot (digits only)
        self._client_key = client_key
        self._commands = commands
        self._send_code = send_code
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._port = 0
        self._scripts: Path | None = None
        self._env_dir: Path | None = None

    def run_scripts(self, scripts: Path, services: HostServices) -> None:
        """Answer by running the scripts in `scripts` against `services` from now on."""
        self._env_dir = Path(tempfile.mkdtemp(prefix=f"julia-{self.name}-"))
        env_file = self._env_dir / "julia-gateway.env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(services.env_file())
        self._scripts = scripts

    async def start(self) -> VpsHost:
        """Listen on a free loopback port; returns the registry entry, host key pinned."""
        authorized = asyncssh.import_authorized_keys(
            self._client_key.export_public_key().decode("ascii")
        )
        self._acceptor = await asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", self._port,
            server_host_keys=[self._host_key], authorized_client_keys=authorized,
            process_factory=self._handle,
        )  # fmt: skip
        self._port = self._acceptor.get_port()
        return self.registry_entry()

    def registry_entry(self) -> VpsHost:
        return VpsHost(
            name=self.name, address="127.0.0.1", port=self._port, username="julia",
            capacity=self.capacity, labels=frozenset({"sandbox"}),
            host_key=self._host_key.export_public_key().decode("ascii").strip(),
        )  # fmt: skip

    async def kill(self) -> None:
        """The host dies: the port stops accepting connections."""
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    async def close(self) -> None:
        """Stop for good: killed, and its env file gone."""
        await self.kill()
        if self._env_dir is not None:
            shutil.rmtree(self._env_dir, ignore_errors=True)
            self._env_dir = None

    async def _handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        argv = shlex.split(process.command or "")
        if self._scripts is not None and self._env_dir is not None:
            await self._run_script(process, argv, self._scripts, self._env_dir)
            return
        answer = self._answer(argv)
        if answer is None:
            process.stderr.write(f"{argv[0] if argv else 'sh'}: command not found\n")
            process.exit(127)
            return
        process.stdout.write(_ENCODER.encode(answer).decode() + "\n")
        process.exit(0)

    async def _run_script(self, process: asyncssh.SSHServerProcess[str], argv: list[str],
                          scripts: Path, env_dir: Path) -> None:
        """The script the command names, its output and exit status handed back as sshd would;
        only our four command names run, each as the file of that name in `scripts`."""
        names = {self._commands.status: "julia-gateway-status",
                 self._commands.request_code: "julia-gateway-request-code",
                 self._commands.register: "julia-gateway-register",
                 self._commands.release: "julia-gateway-release"}
        script = names.get(argv[0]) if argv else None
        if script is None:
            process.stderr.write(f"{argv[0] if argv else 'sh'}: command not found\n")
            process.exit(127)
            return
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "JULIA_GATEWAY_ENV": str(env_dir / "julia-gateway.env")}
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(scripts / script), *argv[1:], env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await child.communicate()
        process.stdout.write(out.decode())
        process.stderr.write(err.decode())
        process.exit(child.returncode or 0)

    def _answer(self, argv: list[str]) -> dict[str, object] | None:
        if argv == [self._commands.status]:
            return {"gateway_up": self.gateway_up, "used_slots": self.used_slots}
        options = dict(zip(argv[1::2], argv[2::2], strict=False))
        number = options.get("--number", "")
        if argv[:1] == [self._commands.request_code] and number:
            return self.request_code(number)
        if argv[:1] == [self._commands.register] and number:
            return self.register(number, options.get("--code", ""))
        if argv[:1] == [self._commands.release] and number:
            return self.release(number)
        return None

    # What the registration agent does (the Python answers, and `host_agent.py`) -------------

    def request_code(self, number: str) -> dict[str, object]:
        """WhatsApp texts its code to `number` (through the Salvy sandbox when wired)."""
        code = self._send_code(number) if self._send_code else None
        self.codes[number] = code or "123456"
        return {"requested": True}

    def register(self, number: str, code: str) -> dict[str, object]:
        """Safe to repeat, as the activator needs: a number registered here answers so."""
        if number in self.registered:
            return {"registered": True, "instance": f"wa-{number}"}
        if number not in self.codes:
            return {"registered": False, "reason": "no code requested for this number"}
        if self.codes[number] != code:
            return {"registered": False, "reason": "invalid code"}
        if not self.gateway_up or self.used_slots >= self.capacity:
            return {"registered": False, "reason": "gateway unavailable"}
        self.used_slots += 1
        self.registered.add(number)
        del self.codes[number]
        return {"registered": True, "instance": f"wa-{number}"}

    def release(self, number: str) -> dict[str, object]:
        if number not in self.registered:
            return {"released": False}
        self.registered.discard(number)
        self.used_slots -= 1
        return {"released": True}
