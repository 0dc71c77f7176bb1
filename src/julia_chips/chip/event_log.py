"""A chip's event stream on JetStream: the one place chip events are written and read.

The load and the append are `jetstream/event_stream.py`'s (expected last subject sequence:
one writer per chip; `Nats-Msg-Id = event_id`: a retried append is stored once); what is
the chip's own is telling its events from foreign messages on its subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import AnyChipEvent, ChipEvent
from julia_chips.contract.codec import event_headers
from julia_chips.contract.subjects import Stream, chip_events
from julia_chips.jetstream.event_stream import EventStream
from julia_chips.jetstream.stored_chip_event import read_chip_event


class StoredEvent(msgspec.Struct, frozen=True):
    seq: int  # stream sequence: the chip's version for optimistic concurrency
    event: AnyChipEvent


class ChipHistory(msgspec.Struct, frozen=True):
    events: list[StoredEvent]
    # The subject's last sequence read, foreign messages included: what the next append
    # must expect, or it conflicts with a message that is no event forever.
    last_seq: int


class ChipEventLog(Protocol):
    """A chip's event stream: JetStream in production, a dict in unit tests."""

    async def last_seq(self, chip_id: str) -> int: ...

    async def load(self, chip_id: str, after_seq: int = 0) -> list[StoredEvent]: ...

    async def history(self, chip_id: str, after_seq: int = 0) -> ChipHistory:
        """`load`, and how far it read: what a recovering actor needs."""

    async def append(
        self, chip_id: str, events: Sequence[ChipEvent], expected_last_seq: int
    ) -> list[int]:
        """Append in order; returns their sequences. :raises WriteConflict:"""


class JetStreamChipEventLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._stream: EventStream[ChipEvent] = EventStream(js, Stream.CHIP_EVENTS,
                                                           event_headers)

    async def last_seq(self, chip_id: str) -> int:
        """Sequence of the chip's last event, 0 when it has none."""
        return await self._stream.last_seq(chip_events(chip_id))

    async def load(self, chip_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """The chip's events with sequence > after_seq, oldest first."""
        return (await self.history(chip_id, after_seq)).events

    async def history(self, chip_id: str, after_seq: int = 0) -> ChipHistory:
        """The chip's events after `after_seq`, skipping foreign messages, and the last
        sequence read."""
        subject = chip_events(chip_id)
        read = await self._stream.load(subject, after_seq)
        stored = []
        for msg in read.messages:
            event = read_chip_event("event_log", subject, msg.seq, msg.data, msg.headers)
            if event is not None:
                stored.append(StoredEvent(msg.seq, event))
        return ChipHistory(stored, read.last_seq)

    async def append(
        self, chip_id: str, events: Sequence[ChipEvent], expected_last_seq: int
    ) -> list[int]:
        """Append in order; returns their sequences. :raises WriteConflict:"""
        return await self._stream.append(chip_events(chip_id), events, expected_last_seq)
