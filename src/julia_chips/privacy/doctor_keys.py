"""Each doctor's key in the KV bucket `doctor_keys`: made on first use, deleted to erase.

The balancer seals what it keeps of a doctor in ROUTE_EVENTS under this key
(`privacy/sealing.py`) and opens it on a rebuild; erasing the doctor purges the key, and
from then on everything sealed under it reads as erased (docs/privacy.md).
The key is the only copy: the bucket is the place personal data in ROUTE_EVENTS depends on.
"""

from __future__ import annotations

import contextlib

from nats.js.client import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from julia_chips.contract.subjects import Bucket
from julia_chips.privacy.sealing import KEY_BYTES, new_key


class DoctorKeys:
    """The keys, cached: a rebuild loads them all once (`load_all`), then `get` is a lookup."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None
        self._cache: dict[str, bytes] = {}

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(Bucket.DOCTOR_KEYS)
        return self._kv

    async def load_all(self) -> int:
        """Read every key into the cache (a watcher's initial values); returns how many."""
        watcher = await (await self._bucket()).watchall(ignore_deletes=True)
        try:
            while (entry := await watcher.updates(timeout=30.0)) is not None:  # type: ignore[no-untyped-call]
                if entry.value and len(entry.value) == KEY_BYTES:
                    self._cache[entry.key] = entry.value
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return len(self._cache)

    def get(self, doctor_id: str) -> bytes | None:
        """The cached key; None when there is none (never made, or erased)."""
        return self._cache.get(doctor_id)

    async def fetch(self, doctor_id: str) -> bytes | None:
        """The stored key, past the cache (the desk opens with it before erasing)."""
        try:
            entry = await (await self._bucket()).get(doctor_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value if entry.value and len(entry.value) == KEY_BYTES else None

    async def ensure(self, doctor_id: str) -> bytes:
        """The doctor's key, made now when there is none: `create` loses to a concurrent
        maker, and then the stored one is used, so a doctor never has two."""
        if (key := self._cache.get(doctor_id)) is not None:
            return key
        key = new_key()
        try:
            await (await self._bucket()).create(doctor_id, key)
        except KeyWrongLastSequenceError:
            stored = await self.fetch(doctor_id)
            if stored is None:
                raise
            key = stored
        self._cache[doctor_id] = key
        return key

    def forget(self, doctor_id: str) -> None:
        """Drop the cached key (the doctor was erased)."""
        self._cache.pop(doctor_id, None)

    async def erase(self, doctor_id: str) -> bool:
        """Purge the doctor's key (every revision); True when there was one."""
        existed = await self.fetch(doctor_id) is not None
        self.forget(doctor_id)
        with contextlib.suppress(KeyNotFoundError):
            await (await self._bucket()).purge(doctor_id)
        return existed
