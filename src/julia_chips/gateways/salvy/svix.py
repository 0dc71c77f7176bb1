"""Svix webhook signatures, as Salvy sends them.

The signed content is `{svix-id}.{svix-timestamp}.{raw body}`, HMAC-SHA256 keyed by the
base64 secret after `whsec_`. The timestamp window (`contract.replay.SVIX`) stops a captured
request being replayed later; the id lets receivers drop Svix's own retries.

The headers are checked first (`check_headers`), on their own: a request without a fresh
signature is refused before its body is read, so a stranger cannot make us buffer one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from julia_chips.contract.replay import SVIX, ReplayWindow

_PREFIX = "whsec_"
_MAX_TIMESTAMP_DIGITS = 11  # Unix seconds until the year 5138: longer is no timestamp of ours


class SignatureInvalid(Exception):
    """The request did not come from the holder of the secret, or came too late or too early."""


class SvixHeaders(msgspec.Struct, frozen=True, kw_only=True):
    """The three signature headers of one delivery, present and dated within the window."""

    msg_id: str
    timestamp: int  # Unix seconds
    signatures: str


def check_secret(secret: str) -> None:
    """Raise ValueError unless `secret` is base64 after an optional `whsec_`: checked at
    start-up, so a mistyped secret stops the process instead of failing every webhook."""
    _key(secret)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `svix-signature` header value (`v1,<base64>`) for a body: used by the sandbox.

    :param timestamp: Unix seconds, sent as `svix-timestamp`.
    """
    digest = hmac.new(_key(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode("ascii")


def check_headers(headers: Mapping[str, str], *, now: datetime,
                  window: ReplayWindow = SVIX) -> SvixHeaders:
    """The signature headers, or SignatureInvalid: missing, or a timestamp that is not Unix
    seconds or lies outside `window` around `now`.

    :param headers: request headers with lower-case names (aiohttp's are case-insensitive).
    """
    msg_id = headers.get("svix-id")
    raw_ts = headers.get("svix-timestamp")
    raw_sigs = headers.get("svix-signature")
    if not msg_id or not raw_ts or not raw_sigs:
        raise SignatureInvalid("missing svix-id, svix-timestamp or svix-signature header")
    if not (raw_ts.isascii() and raw_ts.isdigit()) or len(raw_ts) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureInvalid("svix-timestamp is not Unix seconds")
    timestamp = int(raw_ts)
    if not window.admits(datetime.fromtimestamp(timestamp, UTC), now):
        raise SignatureInvalid("svix-timestamp outside the tolerance window")
    return SvixHeaders(msg_id=msg_id, timestamp=timestamp, signatures=raw_sigs)


def check_signature(secret: str, found: SvixHeaders, body: bytes) -> None:
    """Raise SignatureInvalid unless one `v1` signature matches `body`.

    :param body: the raw bytes as received: re-serialised JSON would not match.
    """
    expected = sign(secret, found.msg_id, found.timestamp, body).encode("ascii")
    for candidate in found.signatures.split():
        # Several signatures appear while a secret is being rotated; any v1 match will do.
        if candidate.startswith("v1,") and hmac.compare_digest(expected, candidate.encode()):
            return
    raise SignatureInvalid("no matching v1 signature")


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: datetime) -> None:
    """Both checks at once, for a receiver that holds the whole request already."""
    check_signature(secret, check_headers(headers, now=now), body)


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("svix secret is not base64 after the whsec_ prefix") from exc


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body
