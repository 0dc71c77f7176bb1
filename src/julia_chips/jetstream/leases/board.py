"""A live view of lease keys: one KV watch on `shard_leases` feeding `Sightings`.

Standbys look at it every `look_every` for nothing (the server pushes each renewal), instead
of polling every key. A watch that falls silent (nats-py's ordered consumer recovers after
two missed heartbeats) only ages the sightings: past the TTL a key counts as free, `create`
is tried, and a refused one reads the key again (`refresh`). So a lost watch degrades to the
TTL, never to a takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType

from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from julia_chips.jetstream.leases.sightings import LeaseTiming, Sighting, Sightings, Verdict

log = logging.getLogger(__name__)

LOAD_TIMEOUT = 5.0  # seconds to wait for the keys as they are when the watch starts


class LeaseBoard:
    """The keys of `shard_leases` matching `keys` (a KV filter: one key, or `>`)."""

    def __init__(self, kv: KeyValue, keys: str, timing: LeaseTiming,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kv, self._keys, self.timing, self.now = kv, keys, timing, clock
        self._sightings = Sightings()
        self._loaded = asyncio.Event()
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseBoard:
        self._watcher = await self._kv.watch(self._keys)
        self._task = asyncio.create_task(self._follow(self._watcher))
        with contextlib.suppress(TimeoutError):  # unloaded: every key looks free; create says
            await asyncio.wait_for(self._loaded.wait(), LOAD_TIMEOUT)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._watcher is not None:
            with contextlib.suppress(Exception):  # NATS away: the server drops it later
                await self._watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the keys as they were when the watch started are in
                self._loaded.set()
            elif entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                self._sightings.gone(entry.key)
            elif entry.revision is not None:
                self._sightings.saw(entry.key, entry.value.decode(errors="replace"),
                                    entry.revision, self.now())

    def sighting(self, key: str) -> Sighting | None:
        return self._sightings.get(key)

    def verdict(self, key: str) -> Verdict:
        return self._sightings.verdict(key, self.now(), self.timing)

    def under(self, prefix: str) -> dict[str, Sighting]:
        return self._sightings.under(prefix, self.now(), self.timing)

    def forget(self, key: str) -> None:
        """We deleted `key` ourselves (a dead holder's heartbeat): free at once, not when the
        watch brings the delete."""
        self._sightings.gone(key)

    async def refresh(self, key: str) -> None:
        """Read `key` itself: `create` was refused for a key the board thought free."""
        try:
            entry = await self._kv.get(key)
        except NotFoundError:  # never taken, deleted or expired
            self._sightings.gone(key)
            return
        except (NatsError, TimeoutError) as err:
            log.warning("lease %s not read (%r)", key, err)
            return
        if entry.value and entry.revision is not None:
            self._sightings.saw(key, entry.value.decode(errors="replace"), entry.revision,
                                self.now())
