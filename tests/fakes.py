"""In-memory stand-ins for our own ports; the integration contract tests run them beside
the real ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from julia_chips.balancer.dispatch import SendRefused
from julia_chips.chip.event_log import ChipHistory, StoredEvent
from julia_chips.chip.snapshots import ChipSnapshot
from julia_chips.contract.chip import AnyChipEvent, ChipEvent
from julia_chips.contract.subjects import chip_events
from julia_chips.jetstream.event_stream import WriteConflict


class InMemoryChipEventLog:
    """One global sequence like a stream; per-chip expected-last-sequence, then msg-id dedupe."""

    def __init__(self) -> None:
        self.streams: dict[str, list[StoredEvent]] = {}
        self._seq = 0
        self._by_id: dict[str, int] = {}

    async def last_seq(self, chip_id: str) -> int:
        stored = self.streams.get(chip_id)
        return stored[-1].seq if stored else 0

    async def load(self, chip_id: str, after_seq: int = 0) -> list[StoredEvent]:
        return [s for s in self.streams.get(chip_id, []) if s.seq > after_seq]

    async def history(self, chip_id: str, after_seq: int = 0) -> ChipHistory:
        """Nothing foreign is ever stored here: the last event is the last sequence."""
        events = await self.load(chip_id, after_seq)
        return ChipHistory(events, events[-1].seq if events else after_seq)

    async def append(
        self, chip_id: str, events: Sequence[ChipEvent], expected_last_seq: int
    ) -> list[int]:
        seqs = []
        for event in events:
            if await self.last_seq(chip_id) != expected_last_seq:
                raise WriteConflict(chip_events(chip_id), expected_last_seq)
            if event.event_id in self._by_id:  # JetStream checks the sequence first, then dedupes
                seqs.append(self._by_id[event.event_id])
                continue
            self._seq += 1
            stored = StoredEvent(self._seq, _as_any(event))
            self.streams.setdefault(chip_id, []).append(stored)
            self._by_id[event.event_id] = self._seq
            seqs.append(self._seq)
            expected_last_seq = self._seq
        return seqs


class InMemorySnapshotStore:
    def __init__(self) -> None:
        self.snapshots: dict[str, ChipSnapshot] = {}

    async def load(self, chip_id: str) -> ChipSnapshot | None:
        return self.snapshots.get(chip_id)

    async def save(self, snapshot: ChipSnapshot) -> None:
        self.snapshots[snapshot.state.chip_id] = snapshot


def _as_any(event: ChipEvent) -> AnyChipEvent:
    return event  # type: ignore[return-value]


class FakeSender:
    """In-memory gateway for tests and benchmarks; `journal` keeps sends across a SIGKILL."""

    def __init__(self, journal: Path | None = None, delay: float = 0.0) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.hang_on: set[str] = set()  # texts whose send never answers (crash tests)
        self.refuse_on: set[str] = set()
        self._journal = journal
        self._delay = delay

    async def send_text(self, instance: str, phone: str, text: str) -> str:
        if text in self.refuse_on:
            raise SendRefused("number is not on WhatsApp")
        self.sent.append((instance, phone, text))
        if self._journal is not None:
            with self._journal.open("a") as out:
                out.write(json.dumps({"instance": instance, "text": text}) + "\n")
        if self._delay:
            await asyncio.sleep(self._delay)
        if text in self.hang_on:
            await asyncio.Event().wait()
        return f"fake-{len(self.sent)}"
