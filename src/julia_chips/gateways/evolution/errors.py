"""Typed failures of the Evolution API, mapped from its documented error bodies.

Evolution renders errors as `{status, error, response: {message}}`, where `message` is a
string (bare 401) or a list of strings and `OnWhatsApp` objects. Texts are redacted before
they become exception messages, because Baileys errors can quote a recipient's JID.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from julia_chips.gateways.http_exchange import UNREADABLE
from julia_chips.privacy import mask_phone

_LONG_DIGITS = re.compile(r"\d{8,}")


class GatewayError(Exception):
    """Any Evolution API failure; `status` is the HTTP status when there was a response."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(GatewayError):
    """Wrong or missing `apikey`: a configuration fault, never worth retrying."""


class InstanceMissing(GatewayError):
    """The instance does not exist on this gateway (deleted, or the gateway lost it on restart)."""


class InstanceNameTaken(GatewayError):
    """Create refused: the name is in use, possibly by our own earlier, half-finished attempt."""


class InstanceNotConnected(GatewayError):
    """The instance's socket is closed (e.g. logout of an instance already logged out)."""


class NumberNotOnWhatsApp(GatewayError):
    """The recipient has no WhatsApp account: mark the contact, do not retry."""


class RateLimited(GatewayError):
    """WhatsApp or the gateway asked us to slow down; `retry_after` in seconds when known."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class GatewayUnavailable(GatewayError):
    """No usable answer (connection refused, timeout, 5xx).

    `request_sent` is False only when we never reached the server, the one case where a
    non-idempotent call certainly had no effect.
    """

    def __init__(self, message: str, *, status: int | None, request_sent: bool) -> None:
        super().__init__(message, status=status)
        self.request_sent = request_sent


class SendOutcomeUnknown(GatewayError):
    """A send was interrupted after it left us: it may have reached the doctor.

    Principle 4: record it as `unknown` for review; re-sending could message a doctor twice.
    """


class LinkFailed(GatewayError):
    """`connect`/`restart` answered HTTP 200 with `{"error": true}`: e.g. restart while closed."""


class _OnWhatsApp(msgspec.Struct, kw_only=True):
    exists: bool
    number: str = ""


class _Response(msgspec.Struct, kw_only=True):
    message: str | list[str | _OnWhatsApp] = ""


class _ErrorBody(msgspec.Struct, kw_only=True):
    response: _Response | None = None


_ERROR = msgspec.json.Decoder(_ErrorBody)


def redact(text: str) -> str:
    """Mask anything that looks like a phone number (LGPD) before it reaches a log or an error."""
    return _LONG_DIGITS.sub(lambda m: mask_phone(m.group(0)), text)


def error_from_response(status: int, body: bytes, retry_after: float | None = None) -> GatewayError:
    """The typed error for a non-2xx Evolution answer."""
    messages = _messages(body)
    text = redact("; ".join(m for m in messages if isinstance(m, str)) or f"HTTP {status}")
    if status == 401:
        return Unauthorized(text, status=status)
    if status == 404:
        return InstanceMissing(text, status=status)
    if status == 403 and "already in use" in text:
        return InstanceNameTaken(text, status=status)
    if status == 429 or "rate-overlimit" in text:
        return RateLimited(text, status=status, retry_after=retry_after)
    if status >= 500:
        return GatewayUnavailable(text, status=status, request_sent=True)
    missing = [m for m in messages if isinstance(m, _OnWhatsApp) and not m.exists]
    if missing:
        masked = mask_phone(missing[0].number)
        return NumberNotOnWhatsApp(f"{masked} is not on WhatsApp", status=status)
    if "is not connected" in text:
        return InstanceNotConnected(text, status=status)
    return GatewayError(text, status=status)


def _messages(body: bytes) -> list[Any]:
    try:
        decoded = _ERROR.decode(body)
    except UNREADABLE:
        return [body[:200].decode("utf-8", "replace")]  # a proxy's HTML page, say
    if decoded.response is None:
        return []
    message = decoded.response.message
    return [message] if isinstance(message, str) else list(message)
