"""WhatsApp addresses (JIDs) to E.164 phone numbers, and back."""

from __future__ import annotations

from julia_chips.phones import normalise_phone

_PHONE_SERVERS = ("s.whatsapp.net", "c.us")


def phone_from_jid(jid: str) -> str | None:
    """`5511999999999@s.whatsapp.net` → `+5511999999999`; None for groups, LIDs and broadcasts.

    The old eight-digit form of a Brazilian mobile (`551187654321@…`) gains its ninth digit
    (`normalise_phone`), so a doctor has one number whichever form WhatsApp wrote.

    A LID (`…@lid`) hides the phone number, and a group JID is not a person: neither can be
    tied to a doctor, so callers must not guess.
    """
    user, _, server = jid.partition("@")
    user = user.split(":", 1)[0]  # device suffix: `5511…:12@s.whatsapp.net`
    if server not in _PHONE_SERVERS or not user.isdigit():
        return None
    return normalise_phone(user)


def jid_from_phone(phone: str) -> str:
    """The personal JID Evolution expects for a phone number in any punctuation."""
    return f"{digits_only(phone)}@s.whatsapp.net"


def digits_only(phone: str) -> str:
    """Evolution and the VPS tools take bare digits (`5511…`), never `+` or spaces."""
    return "".join(ch for ch in phone if ch.isdigit())
