"""Chip snapshots in the KV bucket `chip_snapshots`: state + the last event sequence it covers.

A snapshot is only a shortcut for recovery: losing one costs a longer replay, nothing else.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
from nats.js.client import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from julia_chips.chip.model.lifecycle import ChipState
from julia_chips.contract.chip_commands import CommandReply
from julia_chips.contract.subjects import Bucket
from julia_chips.jetstream.acked_publish import AckedPublisher


class ChipSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    state: ChipState
    last_seq: int
    replies: dict[str, CommandReply] = {}  # recent command ids -> their first answer


_DECODER = msgspec.json.Decoder(ChipSnapshot)
_ENCODER = msgspec.json.Encoder()


class SnapshotStore(Protocol):
    async def load(self, chip_id: str) -> ChipSnapshot | None: ...

    async def save(self, snapshot: ChipSnapshot) -> None: ...


class KvSnapshotStore:
    def __init__(self, kv: KeyValue, publisher: AckedPublisher) -> None:
        self._kv = kv
        self._publisher = publisher

    @classmethod
    async def open(cls, js: JetStreamContext) -> KvSnapshotStore:
        return cls(await js.key_value(Bucket.CHIP_SNAPSHOTS), AckedPublisher(js._nc))

    async def load(self, chip_id: str) -> ChipSnapshot | None:
        try:
            entry = await self._kv.get(chip_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if not entry.value:
            return None
        try:
            return _DECODER.decode(entry.value)
        except msgspec.ValidationError:
            return None  # an older snapshot shape: replay from the start instead

    async def save(self, snapshot: ChipSnapshot) -> None:
        """A KV put is a publish to `$KV.<bucket>.<key>`; through our publisher it costs a
        worker a third of what `kv.put`'s request machinery does."""
        subject = f"$KV.{Bucket.CHIP_SNAPSHOTS}.{snapshot.state.chip_id}"
        await self._publisher.publish(subject, _ENCODER.encode(snapshot), {})
