"""A sandbox VPS host: a real asyncssh server on 127.0.0.1 that answers the gateway commands.

It generates its host key at start and accepts exactly one client public key, so the
adapter's host-key pinning and key auth are exercised for real. Faults: `slow` (answers
late), `gateway_down` (status says so), `kill` (stops listening: connections are refused).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable

import asyncssh
import msgspec

from julia_chips.gateways.vps.client import DEFAULT_COMMANDS, HostCommands
from julia_chips.gateways.vps.hosts import VpsHost

CodeSender = Callable[[str], str | None]  # digits-only number -> the code WhatsApp texted
_ENCODER = msgspec.json.Encoder()


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

    async def _handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        argv = shlex.split(process.command or "")
        answer = self._answer(argv)
        if answer is None:
            process.stderr.write(f"{argv[0] if argv else 'sh'}: command not found\n")
            process.exit(127)
            return
        process.stdout.write(_ENCODER.encode(answer).decode() + "\n")
        process.exit(0)

    def _answer(self, argv: list[str]) -> dict[str, object] | None:
        if argv == [self._commands.status]:
            return {"gateway_up": self.gateway_up, "used_slots": self.used_slots}
        options = dict(zip(argv[1::2], argv[2::2], strict=False))
        number = options.get("--number", "")
        if argv[:1] == [self._commands.request_code] and number:
            code = self._send_code(number) if self._send_code else None
            self.codes[number] = code or "123456"
            return {"requested": True}
        if argv[:1] == [self._commands.register] and number:
            return self._register(number, options.get("--code", ""))
        if argv[:1] == [self._commands.release] and number:
            return self._release(number)
        return None

    def _register(self, number: str, code: str) -> dict[str, object]:
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

    def _release(self, number: str) -> dict[str, object]:
        if number not in self.registered:
            return {"released": False}
        self.registered.discard(number)
        self.used_slots -= 1
        return {"released": True}
