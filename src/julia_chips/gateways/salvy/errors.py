"""Typed failures of the Salvy API, keyed by Salvy's error codes.

Salvy answers errors with a kebab-case `code` (`did-area-code-out-of-stock`,
`too-many-attempts`, …) and a human `message`; the code decides the type, so callers can
tell "try another DDD" from "fix the token" without parsing prose.
"""

from __future__ import annotations

import msgspec

from julia_chips.gateways.http_exchange import UNREADABLE


class SalvyError(Exception):
    """Any Salvy failure; `status` is the HTTP status and `code` Salvy's error code, when known."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SalvyUnauthorized(SalvyError):
    """Bad or revoked API key (or a sandbox key against production data)."""


class PhoneAccountMissing(SalvyError):
    """No such phone account for this company."""


class AreaCodeUnavailable(SalvyError):
    """The DDD is out of stock, invalid or not configured: pick another area code."""


class IdempotencyMismatch(SalvyError):
    """An idempotency key was reused with different parameters: a bug on our side, not a retry."""


class PhoneAccountStatusInvalid(SalvyError):
    """The account's status forbids the action (e.g. cancelling an already cancelled number)."""


class SalvyRateLimited(SalvyError):
    """Still rate-limited after our bounded retries; `retry_after` in seconds when sent."""

    def __init__(self, message: str, *, status: int, code: str | None, retry_after: float | None):
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class SalvyUnavailable(SalvyError):
    """No usable answer: connection failure, timeout or 5xx."""


_BY_CODE: dict[str, type[SalvyError]] = {
    "did-area-code-out-of-stock": AreaCodeUnavailable,
    "phone-account-area-code-invalid": AreaCodeUnavailable,
    "virtual-phone-account-area-code-inventory-config-missing": AreaCodeUnavailable,
    "idempotency-parameters-mismatch-error": IdempotencyMismatch,
    "phone-account-status-invalid": PhoneAccountStatusInvalid,
}


class _ErrorBody(msgspec.Struct, kw_only=True):
    code: str | None = None
    message: str | None = None


def salvy_error(status: int, body: bytes, retry_after: float | None) -> SalvyError:
    """The typed error for a non-2xx Salvy answer."""
    try:
        parsed = msgspec.json.decode(body, type=_ErrorBody)
    except UNREADABLE:
        parsed = _ErrorBody()
    code = parsed.code
    text = f"salvy HTTP {status}: {code or '-'}: {parsed.message or ''}".rstrip(": ")
    if status == 429:
        return SalvyRateLimited(text, status=status, code=code, retry_after=retry_after)
    if code in _BY_CODE:
        return _BY_CODE[code](text, status=status, code=code)
    if status in (401, 403):
        return SalvyUnauthorized(text, status=status, code=code)
    if status == 404:
        return PhoneAccountMissing(text, status=status, code=code)
    if status >= 500:
        return SalvyUnavailable(text, status=status, code=code)
    return SalvyError(text, status=status, code=code)
