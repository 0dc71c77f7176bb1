"""Operate VPS hosts over SSH: health, host choice, WhatsApp code request and registration.

Each host runs the commands shipped in `deploy/vps/` (README there: install, env file, the
registration agent they call), each printing one JSON object on stdout:

- status: `{"gateway_up": true, "used_slots": 3}`
- request code: `{"requested": true}` or `{"requested": false, "reason": "…"}`
- register: `{"registered": true, "instance": "chip-…"}` or `{"registered": false, "reason": "…"}`
- release: `{"released": true}`, or `{"released": false}` when the number held no slot there

A command that could not be done exits non-zero (`{"error": "…"}`, the reason on stderr):
`HostCommandFailed`, with that reason.

Numbers and codes are validated as digits and shell-quoted, so nothing we pass can run as
shell on the host.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import msgspec

from julia_chips.gateways.evolution.errors import redact
from julia_chips.gateways.evolution.jid import digits_only
from julia_chips.gateways.vps.host_keys import HostKeyUnknown, trusted_keys
from julia_chips.gateways.vps.hosts import HostHealth, VpsHost
from julia_chips.privacy import mask_phone

log = logging.getLogger(__name__)
R = TypeVar("R")


class HostUnreachable(Exception):
    """SSH could not connect or authenticate (host down, wrong key, unknown host key, timeout)."""


class HostCommandFailed(Exception):
    """The host answered, but a command failed, hung or printed something other than our JSON."""


class NoHostCapacity(Exception):
    """No reachable host with a running gateway has a free slot."""


class HostCommands(msgspec.Struct, frozen=True, kw_only=True):
    """The operator's command names on the hosts (argv[0]; our arguments are appended)."""

    status: str = "julia-gateway-status"
    request_code: str = "julia-gateway-request-code"
    register: str = "julia-gateway-register"
    release: str = "julia-gateway-release"


class CodeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Whether WhatsApp accepted to send a verification SMS to the number."""

    requested: bool
    reason: str | None = None


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of registering and linking a number on a host's gateway."""

    registered: bool
    instance: str | None = None
    reason: str | None = None


class SlotRelease(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the number held a gateway slot on the host (now free); False is done too."""

    released: bool


DEFAULT_COMMANDS = HostCommands()


class _Status(msgspec.Struct, kw_only=True):
    gateway_up: bool
    used_slots: int


class VpsClient:
    """SSH to hosts with our key; one connection per operation, so no idle sessions to leak.

    :param client_keys: private keys (asyncssh `SSHKey` objects or file paths).
    :param known_hosts: known_hosts file for hosts without a pinned `host_key`; a host with
        neither is refused (`host_keys.py`), never connected to unchecked.
    """

    def __init__(
        self,
        *,
        client_keys: Sequence[Any],
        commands: HostCommands = DEFAULT_COMMANDS,
        known_hosts: Path | None = None,
        connect_timeout: float = 10.0,
        command_timeout: float = 120.0,
    ) -> None:
        """:param connect_timeout: / :param command_timeout: seconds."""
        self._client_keys = list(client_keys)
        self._commands = commands
        self._known_hosts = known_hosts
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout

    async def health(self, host: VpsHost) -> HostHealth:
        """Probe one host; failures become an unhealthy HostHealth, never an exception."""
        try:
            status = await self._run_json(host, [self._commands.status], _Status)
        except (HostUnreachable, HostCommandFailed) as exc:
            reachable = isinstance(exc, HostCommandFailed)
            return HostHealth(host=host.name, reachable=reachable, gateway_up=False,
                              capacity=host.capacity, used_slots=0, error=str(exc))  # fmt: skip
        return HostHealth(
            host=host.name, reachable=True, gateway_up=status.gateway_up,
            capacity=host.capacity, used_slots=status.used_slots,
            error=None if status.gateway_up else "gateway service down",
        )  # fmt: skip

    async def survey(self, hosts: Iterable[VpsHost]) -> list[HostHealth]:
        """Probe hosts concurrently, so one slow host costs one timeout, not one each."""
        return list(await asyncio.gather(*(self.health(host) for host in hosts)))

    async def pick_host(self, hosts: Iterable[VpsHost]) -> VpsHost:
        """The healthy host with most free slots: spreading chips makes a host loss hurt less."""
        candidates = list(hosts)
        by_name = {host.name: host for host in candidates}
        healthy = [h for h in await self.survey(candidates) if h.free_slots > 0]
        if not healthy:
            raise NoHostCapacity(f"no free gateway slot on {len(candidates)} host(s)")
        best = max(healthy, key=lambda h: (h.free_slots, h.host))
        return by_name[best.host]

    async def request_code(self, host: VpsHost, phone: str) -> CodeRequest:
        """Ask WhatsApp, from `host`, to send its verification SMS to `phone`."""
        argv = [self._commands.request_code, "--number", _number(phone)]
        log.info("requesting WhatsApp code for %s on %s", mask_phone(phone), host.name)
        return await self._run_json(host, argv, CodeRequest)

    async def register(self, host: VpsHost, phone: str, code: str) -> Registration:
        """Register `phone` with the SMS `code` and link it to the host's gateway."""
        if not (code.isdigit() and len(code) == 6):
            raise ValueError("a WhatsApp code is six digits")
        argv = [self._commands.register, "--number", _number(phone), "--code", code]
        log.info("registering %s on %s", mask_phone(phone), host.name)
        return await self._run_json(host, argv, Registration)

    async def release(self, host: VpsHost, phone: str) -> SlotRelease:
        """Free the gateway slot `phone` holds on `host` (a retired chip); safe to repeat."""
        argv = [self._commands.release, "--number", _number(phone)]
        log.info("releasing the slot of %s on %s", mask_phone(phone), host.name)
        return await self._run_json(host, argv, SlotRelease)

    async def _run_json(self, host: VpsHost, argv: list[str], kind: type[R]) -> R:
        stdout = await self._run(host, argv)
        try:
            return msgspec.json.decode(stdout, type=kind)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise HostCommandFailed(f"{host.name}: {argv[0]} printed bad JSON: {exc}") from exc

    async def _run(self, host: VpsHost, argv: list[str]) -> str:
        conn = await self._connect(host)
        async with conn:
            try:
                async with asyncio.timeout(self._command_timeout):
                    done = await conn.run(shlex.join(argv), check=False)
            except TimeoutError as exc:
                raise HostCommandFailed(f"{host.name}: {argv[0]} timed out") from exc
            except (OSError, asyncssh.Error) as exc:
                raise HostCommandFailed(f"{host.name}: {argv[0]}: {exc}") from exc
        if done.exit_status != 0:
            err = redact(str(done.stderr or "").strip()[:300])
            raise HostCommandFailed(f"{host.name}: {argv[0]} exited {done.exit_status}: {err}")
        return str(done.stdout or "")

    async def _connect(self, host: VpsHost) -> asyncssh.SSHClientConnection:
        try:
            known = trusted_keys(host, self._known_hosts)
        except HostKeyUnknown as exc:
            raise HostUnreachable(str(exc)) from exc
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await asyncssh.connect(
                    host.address, host.port, username=host.username,
                    client_keys=self._client_keys, known_hosts=known,
                    agent_path=None, config=[],
                )  # fmt: skip
        except TimeoutError as exc:
            raise HostUnreachable(f"{host.name}: SSH connect timed out") from exc
        except (OSError, asyncssh.Error) as exc:
            raise HostUnreachable(f"{host.name}: {type(exc).__name__}: {exc}") from exc


def _number(phone: str) -> str:
    digits = digits_only(phone)
    if not 10 <= len(digits) <= 15:
        raise ValueError("a phone number has 10 to 15 digits")
    return digits
