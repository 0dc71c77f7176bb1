"""Meta's webhook signature and verification handshake, as the WhatsApp Cloud API uses them.

Every POST carries `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body keyed by
the app secret (`CLOUD_API_APP_SECRET`): the body is trusted only once it matches, so the
edge checks it before decoding anything. Subscribing a URL is a GET with `hub.mode=subscribe`,
`hub.verify_token` (ours, `CLOUD_API_VERIFY_TOKEN`) and `hub.challenge`, which we echo.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


class SignatureInvalid(Exception):
    """The body was not signed with our app secret (or carries no signature)."""


def sign(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value for `body`: what Meta sends (and the sandbox)."""
    return _PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(app_secret: str, header: str | None, body: bytes) -> None:
    """Raise SignatureInvalid unless `header` signs `body` (the raw bytes as received).

    Compared in constant time, on the hex digits in lower case as Meta writes them.
    """
    if not header or not header.startswith(_PREFIX):
        raise SignatureInvalid(f"missing or malformed {SIGNATURE_HEADER}")
    expected = sign(app_secret, body).encode("ascii")
    if not hmac.compare_digest(expected, header.strip().lower().encode("ascii", "replace")):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


def challenge_answer(query: Mapping[str, str], verify_token: str | None) -> str | None:
    """The `hub.challenge` to echo when `query` is Meta subscribing with our verify token;
    None otherwise (another mode, a wrong or missing token, or no token configured)."""
    given = query.get("hub.verify_token")
    if (verify_token is None or query.get("hub.mode") != "subscribe" or given is None
            or not hmac.compare_digest(given.encode(), verify_token.encode())):
        return None
    return query.get("hub.challenge")
