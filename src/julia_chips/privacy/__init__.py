"""What logs may show: phone numbers are personal data (LGPD) and URLs may carry secrets,
so logs only ever see a masked form."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def mask_phone(phone: str) -> str:
    """Keep the country code, area code and last two digits: `+55 11 *******99`.

    Enough to tell numbers apart in an incident, not enough to call anyone.
    """
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 6:
        return "*" * len(digits)
    return f"+{digits[:2]} {digits[2:4]} {'*' * (len(digits) - 6)}{digits[-2:]}"


_PHONE_IN_TEXT = re.compile(r"\+?\d{10,15}")  # as `Phone` allows, anywhere in a text


def mask_phones_in(text: str) -> str:
    """`text` with every run of digits that could be a phone number masked (`mask_phone`):
    for bodies shown to an operator, which may hold a doctor's number anywhere."""
    return _PHONE_IN_TEXT.sub(lambda found: mask_phone(found.group()), text)


def without_credentials(url: str) -> str:
    """`nats://user:pass@host:4222` as `nats://***@host:4222`: a NATS URL's user part may be
    a password or a bare token, so all of it goes; each server of a comma-separated list."""
    if "," in url:
        return ",".join(without_credentials(server) for server in url.split(","))
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


LINK_CODES = ("pairing_code", "qr")  # a relink's code links a device to the number


def without_link_codes(body: dict[str, object]) -> dict[str, object]:
    """An event's fields as history shows them: a relink's pairing code or QR replaced by
    `<hidden>`. Whoever may see one reads it from the chip's read model while its try lasts
    (`GET /chips/{id}`); the audit log shows only that there was one."""
    return {k: "<hidden>" if k in LINK_CODES and v is not None else v for k, v in body.items()}
