"""The phones the balancer knows, by keyed hash: which are opted out, and whose they are.

An opt-out word comes from a phone, not from a doctor id: Julia's engine may know the same
person under several ids, or write to the phone in its other ninth-digit form, and neither
may reach someone who asked us to stop. So opted-out phones are kept apart from doctors, by
`phones.phone_key` (never the number: ROUTE_EVENTS keeps it forever), and each phone
remembers the doctors a send to it was assigned to, so a reply finds its conversation.
"""

from __future__ import annotations

from julia_chips.phones import phone_key

_NOBODY: frozenset[str] = frozenset()


class Phones:
    """Written by `link`, `opt_out` and `opt_in` only (from route events)."""

    def __init__(self, secret: bytes) -> None:
        """:param secret: the key of the phones' hash (JULIA_PHONE_KEY)."""
        self._secret = secret
        self._opted_out: set[str] = set()
        self._doctors: dict[str, set[str]] = {}  # phone key -> doctor ids sent to it

    def key(self, phone: str) -> str:
        return phone_key(phone, self._secret)

    def opted_out(self, key: str) -> bool:
        return key in self._opted_out

    def doctors(self, key: str) -> frozenset[str]:
        return frozenset(self._doctors.get(key, _NOBODY))

    def link(self, key: str, doctor_id: str) -> None:
        self._doctors.setdefault(key, set()).add(doctor_id)

    def opt_out(self, key: str) -> None:
        self._opted_out.add(key)

    def opt_in(self, key: str) -> None:
        self._opted_out.discard(key)
