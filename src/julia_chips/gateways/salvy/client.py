"""Async client for Salvy's virtual-number API (v3 paths), where chips get their numbers.

Buying is the dangerous call: a create that times out may still have bought a number, and
Salvy bills the whole month. So create always carries an `idempotency-key` (derive it from
the Provision command id), which makes retrying it safe. A 429 means nothing was executed,
so every call may retry it after `Retry-After`, a bounded number of times.

Shapes Salvy documents only for v2 (area-code list) are assumed unchanged in v3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal, TypeVar

import aiohttp
import msgspec

from julia_chips.contract.timestamps import AwareDatetime
from julia_chips.gateways.backoff import Backoff, Sleep, retrying
from julia_chips.gateways.http_exchange import (
    AnswerTooLarge,
    Params,
    decode_strict,
    exchange,
    segment,
)
from julia_chips.gateways.salvy.errors import (
    SalvyError,
    SalvyRateLimited,
    SalvyUnavailable,
    salvy_error,
)

CancelReason = Literal[
    "employee-fired", "unnecessary", "no-coverage", "technical-problems",
    "whatsapp-problems", "whatsapp-blocked", "sim-card-swap", "other",
]  # fmt: skip

DEFAULT_BACKOFF = Backoff(attempts=4, base_delay=0.5, max_delay=60.0)
W = TypeVar("W")


class AreaCode(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A DDD and whether Salvy has numbers in stock for it right now."""

    area_code: int
    available: bool


class PhoneAccount(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A Salvy number. `phone_number` is E.164 and personal data once a chip uses it: never log it.

    `status` ∈ pending, available, active, partial-block, blocked, canceled; billing starts
    once WhatsApp validates the number.
    """

    id: str
    phone_number: str
    status: str
    name: str | None = None
    created_at: AwareDatetime | None = None
    canceled_at: AwareDatetime | None = None
    cancel_reason: str | None = None


class PhoneAccountPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a listing; `total_pages` tells the caller when to stop."""

    accounts: tuple[PhoneAccount, ...]
    page: int
    total_pages: int
    total_count: int


class _AreaCodes(msgspec.Struct, kw_only=True, rename="camel"):
    area_codes: list[AreaCode]


class _Pagination(msgspec.Struct, kw_only=True, rename="camel"):
    page: int
    total_count: int
    total_pages: int


class _Page(msgspec.Struct, kw_only=True):
    data: list[PhoneAccount]
    pagination: _Pagination


class _CreateBody(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    area_code: int
    name: str | None = None


class _CancelBody(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    reason: str
    reason_detail: str | None = None


_ENCODER = msgspec.json.Encoder()


class SalvyClient:
    """Salvy API with a bearer key; the key's prefix (`salvy_test_`…) picks sandbox or prod."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """:param timeout: seconds per HTTP call."""
        self._session = session
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep

    async def list_area_codes(self, *, available_only: bool = True) -> list[AreaCode]:
        """DDDs for WhatsApp-capable (`mobile-did`) numbers; stock changes, so ask before buying."""
        params = {"productType": "mobile-did", "available": str(available_only).lower()}
        body = await self._call("GET", "/api/v3/area-codes", params=params, safe=True)
        return _decode(_AreaCodes, body).area_codes

    async def create_mobile_did(
        self, area_code: int, *, idempotency_key: str, name: str | None = None
    ) -> PhoneAccount:
        """Buy a number in `area_code`; the same key returns the same number, never a second one."""
        payload = _ENCODER.encode(_CreateBody(area_code=area_code, name=name))
        body = await self._call(
            "POST", "/api/v3/phone-accounts/mobile-did", json=payload, safe=True,
            headers={"idempotency-key": idempotency_key},
        )  # fmt: skip
        return _decode(PhoneAccount, body)

    async def get(self, account_id: str) -> PhoneAccount:
        """One phone account by id; PhoneAccountMissing if unknown."""
        body = await self._call("GET", f"/api/v3/phone-accounts/{segment(account_id)}", safe=True)
        return _decode(PhoneAccount, body)

    async def list_accounts(
        self, *, statuses: Sequence[str] = (), page: int = 1, page_size: int = 50
    ) -> PhoneAccountPage:
        """A page of the company's phone accounts, optionally filtered by status."""
        params = [("page", str(page)), ("pageSize", str(page_size))]
        params += [("status", status) for status in statuses]
        body = await self._call("GET", "/api/v3/phone-accounts", params=params, safe=True)
        listed = _decode(_Page, body)
        return PhoneAccountPage(
            accounts=tuple(listed.data),
            page=listed.pagination.page,
            total_pages=listed.pagination.total_pages,
            total_count=listed.pagination.total_count,
        )

    async def cancel(
        self, account_id: str, reason: CancelReason, *, detail: str | None = None
    ) -> None:
        """Cancel at once. Salvy bills the whole month regardless, so prefer reusing numbers."""
        payload = _ENCODER.encode(_CancelBody(reason=reason, reason_detail=detail))
        path = f"/api/v3/phone-accounts/{segment(account_id)}/cancel"
        await self._call("POST", path, json=payload, safe=False)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        json: bytes | None = None,
        params: Params = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Retry 429 always (nothing ran); 5xx and connection errors only when `safe` to repeat."""
        retry_on: tuple[type[Exception], ...] = (
            (SalvyRateLimited, SalvyUnavailable) if safe else (SalvyRateLimited,)
        )
        all_headers = {**self._auth, **(headers or {})}

        async def once() -> bytes:
            return await self._exchange(method, path, json, params, all_headers)

        return await retrying(
            once, policy=self._backoff, retry_on=retry_on, what=f"salvy {method} {path}",
            sleep=self._sleep, server_delay=_retry_after,
        )  # fmt: skip

    async def _exchange(
        self,
        method: str,
        path: str,
        json: bytes | None,
        params: Params,
        headers: dict[str, str],
    ) -> bytes:
        try:
            answer = await exchange(self._session, method, self._base + path, headers=headers,
                                    timeout=self._timeout, json=json, params=params)
        except AnswerTooLarge as exc:
            raise SalvyError(f"salvy: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SalvyUnavailable(f"salvy unreachable: {type(exc).__name__}") from exc
        if answer.status >= 300:
            raise salvy_error(answer.status, answer.body, answer.retry_after)
        return answer.body


def _retry_after(exc: Exception) -> float | None:
    return exc.retry_after if isinstance(exc, SalvyRateLimited) else None


def _decode(kind: type[W], body: bytes) -> W:
    return decode_strict(kind, body, lambda why: SalvyError(f"unexpected salvy answer: {why}"))
