"""Registrars: how a chip's number gets its WhatsApp account and its gateway link.

Two, chosen for new chips by `JULIA_REGISTRAR` (per chip through the activator's hook);
a saga keeps the one it started with:

- `VpsRegistrar` (default, the seed's flow): the operator's commands on the VPS host
  (`deploy/vps/`: request code, register with it), linked to a `WHATSAPP-BAILEYS`
  instance by pairing code.
- `CloudApiRegistrar`: the Graph phone-number flow, then a `WHATSAPP-BUSINESS` gateway
  instance bound to the number's id. The instance still lives on a host's gateway, so the
  host is chosen and freed as for the other.

Both raise one error type, `RegistrationFailed`, that says whether a retry can help and
whether the code (or the host) must be given up, so the saga never loops on a hard limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import msgspec

from julia_chips.gateways.cloud_api.client import CODE_MISMATCH, CloudApiClient, CloudApiError
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.errors import GatewayError
from julia_chips.gateways.evolution.wire import Integration
from julia_chips.gateways.vps.client import HostCommandFailed, HostUnreachable, VpsClient
from julia_chips.gateways.vps.hosts import VpsHost
from julia_chips.privacy import mask_phone

log = logging.getLogger(__name__)
T = TypeVar("T")


class RegistrationFailed(Exception):
    """A registrar step failed. `retryable=False` is final (e.g. 133016: 72 h lock)."""

    def __init__(self, reason: str, *, retryable: bool = True, drop_code: bool = False,
                 drop_host: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.drop_code = drop_code
        self.drop_host = drop_host


class GatewayBinding(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway instance is created with: its integration and, for the Cloud API,
    the number's Graph id and the token Evolution uses to send through it."""

    integration: Integration
    number: str | None = None
    token: str | None = None


class Registrar(Protocol):
    async def binding(self, phone: str) -> GatewayBinding: ...

    async def request_code(self, host: VpsHost, phone: str) -> None: ...

    async def register(self, host: VpsHost, instance: str, phone: str, code: str) -> None: ...


EvolutionFor = Callable[[VpsHost], EvolutionClient]  # each host runs its own gateway


class CloudApiRegistrar:
    """The Graph flow; `pin` is the two-step verification PIN set at register (a secret)."""

    def __init__(self, graph: CloudApiClient, evolution_for: EvolutionFor, *, pin: str,
                 access_token: str, verified_name: str = "Julia") -> None:
        self._graph = graph
        self._evolution_for = evolution_for
        self._pin = pin
        self._access_token = access_token
        self._verified_name = verified_name

    async def binding(self, phone: str) -> GatewayBinding:
        number = await _graph(self._graph.find_or_add(phone, self._verified_name))
        return GatewayBinding(integration="WHATSAPP-BUSINESS", number=number.id,
                              token=self._access_token)

    async def request_code(self, host: VpsHost, phone: str) -> None:
        number = await _graph(self._graph.find_or_add(phone, self._verified_name))
        if number.status == "CONNECTED":
            return  # already registered: no code needed, and none is worth burning
        await _graph(self._graph.request_code(number.id))

    async def register(self, host: VpsHost, instance: str, phone: str, code: str) -> None:
        """Verify and register unless already done (each register spends the 72 h budget),
        then open the gateway instance."""
        number = await _graph(self._graph.find_or_add(phone, self._verified_name))
        if number.status != "CONNECTED":
            if number.code_verification_status != "VERIFIED":
                await _graph(self._graph.verify_code(number.id, code))
            await _graph(self._graph.register(number.id, self._pin))
            log.info("registered %s on the Cloud API", mask_phone(phone))
        await _link(self._evolution_for(host), instance, number=None)


class VpsRegistrar:
    """The operator's commands on the host, linked by pairing code to a Baileys instance."""

    def __init__(self, vps: VpsClient, evolution_for: EvolutionFor) -> None:
        self._vps = vps
        self._evolution_for = evolution_for

    async def binding(self, phone: str) -> GatewayBinding:
        return GatewayBinding(integration="WHATSAPP-BAILEYS")

    async def request_code(self, host: VpsHost, phone: str) -> None:
        answer = await _on_host(self._vps.request_code(host, phone))
        if not answer.requested:
            raise RegistrationFailed(f"code request refused: {answer.reason or 'no reason'}")

    async def register(self, host: VpsHost, instance: str, phone: str, code: str) -> None:
        """Pairing code first (the host's command completes the link with it), then register."""
        await _link(self._evolution_for(host), instance, number=phone)
        answer = await _on_host(self._vps.register(host, phone, code))
        if not answer.registered:
            reason = answer.reason or "no reason"
            raise RegistrationFailed(f"register refused: {reason}",
                                     drop_code="code" in reason)


async def _graph(call: Awaitable[T]) -> T:
    try:
        return await call
    except CloudApiError as exc:
        raise RegistrationFailed(str(exc), retryable=exc.retryable,
                                 drop_code=exc.code == CODE_MISMATCH) from exc


async def _on_host(call: Awaitable[T]) -> T:
    try:
        return await call
    except HostUnreachable as exc:
        raise RegistrationFailed(str(exc), drop_host=True) from exc
    except HostCommandFailed as exc:
        raise RegistrationFailed(str(exc)) from exc


async def _link(evolution: EvolutionClient, instance: str, *, number: str | None) -> None:
    """Open the instance's socket (pairing by number for Baileys); already open is fine."""
    try:
        await evolution.connect(instance, number=number)
    except GatewayError as exc:
        raise RegistrationFailed(f"link failed: {exc}") from exc
