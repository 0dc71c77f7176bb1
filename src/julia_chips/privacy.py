"""LGPD: phone numbers are personal data, so logs only ever see a masked form."""

from __future__ import annotations


def mask_phone(phone: str) -> str:
    """Keep the country code, area code and last two digits: `+55 11 *******99`.

    Enough to tell numbers apart in an incident, not enough to call anyone.
    """
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 6:
        return "*" * len(digits)
    return f"+{digits[:2]} {digits[2:4]} {'*' * (len(digits) - 6)}{digits[-2:]}"
