"""Async client for the Evolution API v2, the WhatsApp gateway running on our VPS hosts.

Retries are deliberately narrow: connection state is a read and `connect` only (re)opens a
socket, so both are retried on 5xx and connection errors; create, logout, delete and restart
are not; `send_text` never is, because a repeat could message a doctor twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

import aiohttp
import msgspec

from julia_chips.contract.observations import ConnectionState
from julia_chips.gateways.backoff import Backoff, Sleep, retrying
from julia_chips.gateways.evolution.errors import (
    GatewayError,
    GatewayUnavailable,
    LinkFailed,
    SendOutcomeUnknown,
    error_from_response,
    redact,
)
from julia_chips.gateways.evolution.jid import digits_only, phone_from_jid
from julia_chips.gateways.evolution.wire import (
    ConnectResponse,
    CreatedInstance,
    CreateResponse,
    InstanceSpec,
    LinkCode,
    SendResponse,
    SendTextBody,
    SentMessage,
    StateResponse,
    create_body,
)
from julia_chips.gateways.http_exchange import AnswerTooLarge, decode_strict, exchange, segment
from julia_chips.privacy import mask_phone

log = logging.getLogger(__name__)
W = TypeVar("W")

_ENCODER = msgspec.json.Encoder()
DEFAULT_BACKOFF = Backoff()


class EvolutionClient:
    """One Evolution server, authenticated with its global `apikey` (create needs it).

    The aiohttp session is the caller's, so one pool serves every gateway.

    >>> client = EvolutionClient(session, "http://127.0.0.1:8080", api_key)
    >>> await client.connection_state("chip-0001")
    'open'
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """:param timeout: seconds per HTTP call; create with a QR can take ~5 s server-side."""
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"apikey": api_key}
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep

    async def create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        """Create an instance with its webhook; InstanceNameTaken if the name exists."""
        body = await self._call("POST", "/instance/create", json=_ENCODER.encode(create_body(spec)))
        created = _decode(CreateResponse, body)
        return CreatedInstance(
            name=created.instance.instance_name,
            instance_id=created.instance.instance_id,
            token=created.hash,
            status=created.instance.status,
        )

    async def connect(self, instance: str, *, number: str | None = None) -> LinkCode:
        """Open the socket and get a QR, or a pairing code when `number` is given."""
        params = {"number": digits_only(number)} if number else None
        path = f"/instance/connect/{segment(instance)}"
        return _link_code(await self._get_retrying(path, f"connect {instance}", params=params))

    async def connection_state(self, instance: str) -> ConnectionState:
        """In-memory state on the gateway: `open` can hide a dead socket, so trust receipts more."""
        path = f"/instance/connectionState/{segment(instance)}"
        body = await self._get_retrying(path, f"state {instance}")
        return _decode(StateResponse, body).instance.state

    async def logout(self, instance: str) -> None:
        """Unlink the device; InstanceNotConnected if it was already closed."""
        await self._call("DELETE", f"/instance/logout/{segment(instance)}")

    async def delete(self, instance: str) -> None:
        """Remove the instance (v2 logs it out first when open)."""
        await self._call("DELETE", f"/instance/delete/{segment(instance)}")

    async def restart(self, instance: str) -> LinkCode:
        """Reopen the socket; LinkFailed when the instance is closed (HTTP 200 with an error)."""
        return _link_code(await self._call("POST", f"/instance/restart/{segment(instance)}"))

    async def send_text(
        self, instance: str, phone: str, text: str, *, delay_ms: int | None = None
    ) -> SentMessage:
        """Send once. SendOutcomeUnknown when interrupted after the request left us.

        :param delay_ms: "composing…" shown to the doctor before the message, in milliseconds.
        """
        request = SendTextBody(number=digits_only(phone), text=text, delay=delay_ms)
        payload = _ENCODER.encode(request)
        try:
            body = await self._call("POST", f"/message/sendText/{segment(instance)}", json=payload)
        except GatewayUnavailable as exc:
            if not exc.request_sent:
                raise
            log.error("send to %s via %s: outcome unknown", mask_phone(phone), instance)
            raise SendOutcomeUnknown(str(exc), status=exc.status) from exc
        sent = _decode(SendResponse, body)
        return SentMessage(
            message_id=sent.key.id,
            remote_phone=phone_from_jid(sent.key.remote_jid) or f"+{digits_only(phone)}",
            status=sent.status,
        )

    async def _get_retrying(
        self, path: str, what: str, *, params: dict[str, str] | None = None
    ) -> bytes:
        """A GET that is safe to repeat (state read, socket (re)open): retried when unavailable."""

        async def once() -> bytes:
            return await self._call("GET", path, params=params)

        return await retrying(
            once, policy=self._backoff, retry_on=(GatewayUnavailable,), what=what,
            sleep=self._sleep,
        )  # fmt: skip

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> bytes:
        """One HTTP exchange: the body of a 2xx, else the typed error."""
        try:
            answer = await exchange(self._session, method, self._base + path,
                                    headers=self._headers, timeout=self._timeout, json=json,
                                    params=params)
        except AnswerTooLarge as exc:
            raise GatewayError(str(exc)) from exc
        except aiohttp.ClientConnectorError as exc:
            raise GatewayUnavailable(
                f"cannot reach gateway: {exc.os_error}", status=None, request_sent=False
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayUnavailable(
                f"gateway exchange interrupted: {type(exc).__name__}",
                status=None,
                request_sent=True,
            ) from exc
        if answer.status >= 300:
            raise error_from_response(answer.status, answer.body, answer.retry_after)
        return answer.body


def _link_code(body: bytes) -> LinkCode:
    answer = _decode(ConnectResponse, body)
    if answer.error:
        raise LinkFailed(redact(answer.message or "connect failed"), status=200)
    if answer.instance is not None:
        return LinkCode(already_open=answer.instance.state == "open")
    return LinkCode(
        already_open=False,
        pairing_code=answer.pairing_code,
        qr_code=answer.code,
        qr_base64=answer.base64,
    )


def _decode(kind: type[W], body: bytes) -> W:
    return decode_strict(kind, body, lambda why: GatewayError(f"unexpected gateway answer: {why}"))
