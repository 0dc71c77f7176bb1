"""What logs may show: phone numbers are personal data (LGPD) and URLs may carry secrets,
so logs only ever see a masked form."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_phone(phone: str) -> str:
    """Keep the country code, area code and last two digits: `+55 11 *******99`.

    Enough to tell numbers apart in an incident, not enough to call anyone.
    """
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 6:
        return "*" * len(digits)
    return f"+{digits[:2]} {digits[2:4]} {'*' * (len(digits) - 6)}{digits[-2:]}"


def without_credentials(url: str) -> str:
    """`nats://user:pass@host:4222` as `nats://***@host:4222`: a NATS URL's user part may be
    a password or a bare token, so all of it goes."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
