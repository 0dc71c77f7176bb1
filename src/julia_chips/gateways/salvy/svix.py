"""Svix webhook signatures, as Salvy sends them.

The signed content is `{svix-id}.{svix-timestamp}.{raw body}`, HMAC-SHA256 keyed by the
base64 secret after `whsec_`. The timestamp window stops a captured request being replayed
later; the id lets receivers drop Svix's own retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta

TOLERANCE = timedelta(minutes=5)
_PREFIX = "whsec_"


class SignatureInvalid(Exception):
    """The request did not come from the holder of the secret, or came too late or too early."""


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `svix-signature` header value (`v1,<base64>`) for a body: used by the sandbox.

    :param timestamp: Unix seconds, sent as `svix-timestamp`.
    """
    digest = hmac.new(_key(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode("ascii")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> None:
    """Raise SignatureInvalid unless one `v1` signature matches and the timestamp is fresh.

    :param headers: request headers with lower-case names (aiohttp's are case-insensitive).
    :param body: the raw bytes as received: re-serialised JSON would not match.
    """
    msg_id = headers.get("svix-id")
    raw_ts = headers.get("svix-timestamp")
    raw_sigs = headers.get("svix-signature")
    if not msg_id or not raw_ts or not raw_sigs:
        raise SignatureInvalid("missing svix-id, svix-timestamp or svix-signature header")
    try:
        timestamp = int(raw_ts)
    except ValueError as exc:
        raise SignatureInvalid("svix-timestamp is not Unix seconds") from exc
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise SignatureInvalid("svix-timestamp outside the tolerance window")
    expected = sign(secret, msg_id, timestamp, body).encode("ascii")
    for candidate in raw_sigs.split():
        # Several signatures appear while a secret is being rotated; any v1 match will do.
        if candidate.startswith("v1,") and hmac.compare_digest(expected, candidate.encode()):
            return
    raise SignatureInvalid("no matching v1 signature")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("svix secret is not base64 after the whsec_ prefix") from exc


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body
