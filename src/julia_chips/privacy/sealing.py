"""Personal data sealed under its doctor's key: AES-GCM, one place that seals and opens.

ROUTE_EVENTS is kept for ever and streams are not rewritten, so a phone or a text stored
there in the clear could never be erased. Sealed under a key of the doctor's own
(`privacy/doctor_keys.py`, KV `DOCTOR_KEYS`), it is erased by deleting that key
("crypto-shredding"): the sealed bytes stay and open to nothing.
"""

from __future__ import annotations

import base64
import os

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # GCM's standard nonce; random per seal, so one key never repeats one


class Sealed(msgspec.Struct, frozen=True, kw_only=True):
    """Ciphertext (with its GCM tag) and nonce in base64; `key_id` names the key, which is
    also the associated data, so a value moved under another doctor does not open."""

    key_id: str
    nonce: str
    ciphertext: str


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def seal(plain: bytes, key_id: str, key: bytes) -> Sealed:
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plain, key_id.encode())
    return Sealed(key_id=key_id, nonce=base64.b64encode(nonce).decode(),
                  ciphertext=base64.b64encode(ciphertext).decode())


def open_sealed(sealed: Sealed, key: bytes | None) -> bytes | None:
    """The plain bytes; None when the key is gone (erased) or does not open them (a value
    tampered with, or sealed under another key): either way there is nothing to read."""
    if key is None:
        return None
    try:
        return AESGCM(key).decrypt(base64.b64decode(sealed.nonce),
                                   base64.b64decode(sealed.ciphertext), sealed.key_id.encode())
    except (InvalidTag, ValueError):
        return None
