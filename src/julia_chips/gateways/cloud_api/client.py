"""The WhatsApp Cloud API (Graph) phone-number calls that register a chip's number.

Flow: find or add the number in our WABA → request_code (SMS) → verify_code → register with
the two-step PIN. `register` and `deregister` share a budget of 10 calls per number per 72 h
(error 133016, then no registering for 72 h), so the caller checks the number's status
first and never calls register on a number that is already connected, and 133016 is a
terminal error: retrying would only push the lock further out.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import aiohttp
import msgspec

from julia_chips.gateways.evolution.jid import digits_only
from julia_chips.gateways.http_exchange import (
    UNREADABLE,
    AnswerTooLarge,
    decode_strict,
    exchange,
    segment,
)
from julia_chips.privacy import mask_phone

log = logging.getLogger(__name__)
W = TypeVar("W")
_ENCODER = msgspec.json.Encoder()

REGISTER_LOCKED = 133016  # 10 register/deregister calls per number per 72 h
PIN_MISMATCH = 133005
REGISTER_TOO_SOON = 133015  # recently deleted/deregistered: wait minutes
ACCOUNT_LOCKED = 131031
CODE_MISMATCH = 136025  # verify_code: wrong or expired code
CODE_REQUEST_FAILED = 136024
TERMINAL_CODES = frozenset({REGISTER_LOCKED, PIN_MISMATCH, ACCOUNT_LOCKED, 190})


class CloudApiError(Exception):
    """A Graph error; `code` is Meta's error code, `retryable` whether repeating may help."""

    def __init__(self, message: str, *, code: int | None, status: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @property
    def retryable(self) -> bool:
        return not (self.code in TERMINAL_CODES or self.status in (401, 403))


class PhoneNumber(msgspec.Struct, frozen=True, kw_only=True):
    """A number in our WABA. `status` CONNECTED means registered: register must not run again."""

    id: str
    display_phone_number: str = ""
    status: str = "PENDING"
    code_verification_status: str = "NOT_VERIFIED"


class _Numbers(msgspec.Struct, kw_only=True):
    data: list[PhoneNumber]


class _Created(msgspec.Struct, kw_only=True):
    id: str


class _ErrorDetail(msgspec.Struct, kw_only=True):
    message: str = ""
    code: int | None = None


class _ErrorBody(msgspec.Struct, kw_only=True):
    error: _ErrorDetail


class CloudApiClient:
    """Graph API for one WABA, with a system-user token (a secret: never logged)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str, waba_id: str,
                 *, timeout: float = 30.0) -> None:
        """:param base_url: `https://graph.facebook.com/v21.0` (version included)."""
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._waba = waba_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def find_or_add(self, phone: str, verified_name: str) -> PhoneNumber:
        """The number's node in our WABA, adding it if absent (so a retry finds, not adds)."""
        digits = digits_only(phone)
        listed = _decode(_Numbers, await self._call("GET", f"/{segment(self._waba)}/phone_numbers"))
        for number in listed.data:
            if digits_only(number.display_phone_number) == digits:
                return number
        body = {"cc": digits[:2], "phone_number": digits[2:], "verified_name": verified_name}
        log.info("adding %s to the WABA", mask_phone(phone))
        created = await self._call("POST", f"/{segment(self._waba)}/phone_numbers", body)
        return PhoneNumber(id=_decode(_Created, created).id, display_phone_number=f"+{digits}")

    async def number(self, phone_number_id: str) -> PhoneNumber:
        path = f"/{segment(phone_number_id)}?fields=status,code_verification_status"
        return _decode(PhoneNumber, await self._call("GET", path))

    async def request_code(self, phone_number_id: str, *, language: str = "pt_BR") -> None:
        """Meta texts a six-digit code to the number (it reaches us via Salvy's webhook)."""
        body = {"code_method": "SMS", "language": language}
        await self._call("POST", f"/{segment(phone_number_id)}/request_code", body)

    async def verify_code(self, phone_number_id: str, code: str) -> None:
        await self._call("POST", f"/{segment(phone_number_id)}/verify_code", {"code": code})

    async def register(self, phone_number_id: str, pin: str) -> None:
        """Counts against the 10-per-72 h budget: call only on a verified, unconnected number."""
        body = {"messaging_product": "whatsapp", "pin": pin}
        await self._call("POST", f"/{segment(phone_number_id)}/register", body)

    async def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> bytes:
        data = None if body is None else _ENCODER.encode(body)
        try:
            answer = await exchange(self._session, method, self._base + path,
                                    headers=self._headers, timeout=self._timeout, json=data)
        except AnswerTooLarge as exc:
            raise CloudApiError(f"graph: {exc}", code=None, status=None) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CloudApiError(f"graph unreachable: {type(exc).__name__}", code=None,
                                status=None) from exc
        if answer.status >= 300:
            raise _error(answer.status, answer.body)
        return answer.body


def _error(status: int, raw: bytes) -> CloudApiError:
    try:
        detail = msgspec.json.decode(raw, type=_ErrorBody).error
    except UNREADABLE:
        return CloudApiError(f"graph HTTP {status}", code=None, status=status)
    return CloudApiError(f"graph error {detail.code}: {detail.message[:200]}", code=detail.code,
                         status=status)


def _decode(kind: type[W], body: bytes) -> W:
    return decode_strict(kind, body, lambda why: CloudApiError(
        f"unexpected graph answer: {why}", code=None, status=200))
