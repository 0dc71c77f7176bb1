"""The `x-julia-secret` of one Evolution instance, derived from the master secret.

Every instance's webhook config holds its header secret in clear, on the VPS that runs it.
With one secret for all, a leaked config could forge "closed 403" for any chip, and so ban
chips and brake the fleet. Each instance gets HMAC(master, its name) instead: the activator
sets it at create, the edge recomputes it for the instance a body names, and one instance's
secret speaks for that instance alone. Nothing to store: the master secret derives them all.
"""

from __future__ import annotations

import hashlib
import hmac

SECRET_HEADER = "x-julia-secret"
_PURPOSE = b"julia-chips evolution webhook v1\x00"  # another use of the master gets other keys


def instance_secret(master: str, instance: str) -> str:
    """The header value `instance` must send (hex, 64 characters)."""
    return hmac.new(master.encode(), _PURPOSE + instance.encode(), hashlib.sha256).hexdigest()


def secret_matches(master: str | None, instance: str, given: str | None) -> bool:
    """Constant-time, and an unset master matches nothing: an open ingress is a forgery hole."""
    if not master or given is None:
        return False
    return hmac.compare_digest(instance_secret(master, instance).encode(), given.encode())
