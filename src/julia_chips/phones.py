"""Phone numbers in one form: E.164 with Brazil's ninth digit, and the keyed hash we keep.

Since 2016 every Brazilian mobile has nine digits after the area code, but WhatsApp still
writes many of them the old way (55 + DDD + eight digits starting 6-9). Both forms are the
same mobile: a doctor who answered "PARAR" from `5511 8765-4321` must stay out when Julia
writes to `+55 11 98765-4321`. Sends and inbound messages both go through `normalise_phone`,
so the two sides compare equal.

A phone is personal data (LGPD), and ROUTE_EVENTS is kept forever: what it keeps of a phone
is `phone_key`, an HMAC under a secret of ours, enough to recognise the phone again and
useless for calling anyone (hashing alone would not do: Brazil's mobiles are few enough to
hash them all).
"""

from __future__ import annotations

import hashlib
import hmac

_BRAZIL = "55"
_MOBILE_FIRST = frozenset("6789")  # eight-digit numbers starting so were mobiles


def normalise_phone(phone: str) -> str:
    """`5511 8765-4321`, `+5511987654321`, `(55) 11 98765 4321` → `+5511987654321`.

    Only a Brazilian number of 55 + a DDD without zeros + eight digits starting 6-9 gains
    its ninth digit; landlines (starting 2-5) and other countries keep their digits.
    """
    digits = "".join(ch for ch in phone if ch.isdigit())
    if (len(digits) == 12 and digits.startswith(_BRAZIL) and "0" not in digits[2:4]
            and digits[4] in _MOBILE_FIRST):
        digits = f"{digits[:4]}9{digits[4:]}"
    return f"+{digits}"


def phone_key(phone: str, secret: bytes) -> str:
    """The keyed hash (32 hex digits) of the normalised phone: both ninth-digit forms of one
    mobile get the same key, and the key alone does not give the number back."""
    digest = hmac.new(secret, normalise_phone(phone).encode(), hashlib.sha256)
    return digest.hexdigest()[:32]
