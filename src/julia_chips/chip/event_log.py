"""A chip's event stream on JetStream: the one place chip events are written and read.

Appends are guarded by `Nats-Expected-Last-Subject-Sequence` (one writer per chip) and carry
`Nats-Msg-Id = event_id` (a retried append is acked as a duplicate, not stored twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
from nats.js.api import Header
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from julia_chips.contract.chip import AnyChipEvent, ChipEvent
from julia_chips.contract.codec import encode_event, event_headers
from julia_chips.contract.subjects import Stream, chip_events
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.stored_chip_event import read_chip_event

WRONG_LAST_SEQUENCE = 10071


class ChipWriteConflict(Exception):
    """Another writer appended to this chip since we read it: reload and decide again."""

    def __init__(self, chip_id: str, expected: int) -> None:
        super().__init__(f"chip {chip_id} moved past sequence {expected}")
        self.chip_id = chip_id
        self.expected = expected


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
    ) -> list[int]: ...


class JetStreamChipEventLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._publisher = AckedPublisher(js._nc)

    async def last_seq(self, chip_id: str) -> int:
        """Sequence of the chip's last event, 0 when it has none."""
        try:
            msg = await self._js.get_last_msg(Stream.CHIP_EVENTS, chip_events(chip_id), direct=True)
        except NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def load(self, chip_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """The chip's events with sequence > after_seq, oldest first."""
        return (await self.history(chip_id, after_seq)).events

    async def history(self, chip_id: str, after_seq: int = 0) -> ChipHistory:
        """The chip's events after `after_seq`, skipping foreign messages, and the last
        sequence read."""
        subject = chip_events(chip_id)
        last = await self.last_seq(chip_id)
        stored: list[StoredEvent] = []
        seq = after_seq
        while seq < last:
            try:
                msg = await self._js.get_msg(Stream.CHIP_EVENTS, seq=seq + 1, subject=subject,
                                             next=True, direct=True)
            except NotFoundError:
                break
            assert msg.seq is not None
            seq = msg.seq
            event = read_chip_event("event_log", subject, seq, msg.data, msg.headers)
            if event is not None:
                stored.append(StoredEvent(seq, event))
        return ChipHistory(stored, seq)

    async def append(
        self, chip_id: str, events: Sequence[ChipEvent], expected_last_seq: int
    ) -> list[int]:
        """Append in order; returns their sequences. :raises ChipWriteConflict:"""
        seqs = []
        subject = chip_events(chip_id)
        for event in events:
            headers: dict[str, str] = event_headers(event) | {
                Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected_last_seq),
                Header.MSG_ID: event.event_id,
            }
            try:
                ack = await self._publisher.publish(subject, encode_event(event), headers)
            except APIError as err:
                if err.err_code == WRONG_LAST_SEQUENCE:
                    raise ChipWriteConflict(chip_id, expected_last_seq) from err
                raise
            seqs.append(ack.seq)
            expected_last_seq = ack.seq
        return seqs
