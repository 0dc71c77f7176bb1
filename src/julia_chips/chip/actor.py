"""One chip's actor: recovers from snapshot + tail, decides, appends, remembers its answers.

Exactly-once effect: every event id derives from the command id, so a redelivered command
is recognised by its id in the chip's own history and answered with the first reply. A
command whose events were only partly appended (crash between two appends) is completed
by deciding again from the state before it, at the time it was first decided.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from datetime import datetime

from julia_chips.chip.event_log import ChipEventLog, StoredEvent
from julia_chips.chip.model.lifecycle import ChipRuleBroken, ChipState, decide, evolve, state_name
from julia_chips.chip.snapshots import ChipSnapshot, SnapshotStore
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.chip_commands import AnyChipCommand, CommandReply, EventRef
from julia_chips.contract.codec import event_type
from julia_chips.contract.subjects import chip_events
from julia_chips.jetstream.event_stream import WriteConflict
from julia_chips.prometheus import EVENTS_APPENDED
from julia_chips.warmer.model.policy import DEFAULT_WARMUP, WarmupPolicy

REMEMBERED_REPLIES = 100  # per chip: far more than any sender retries
MAX_CONFLICT_RETRIES = 8


class _LastCommand:
    """The newest command in the history: the only one that can be partly appended."""

    def __init__(self, command_id: str, before: ChipState, at: datetime) -> None:
        self.command_id = command_id
        self.before = before
        self.at = at
        self.refs: list[EventRef] = []


class ChipActor:
    def __init__(self, chip_id: str, log: ChipEventLog, snapshots: SnapshotStore,
                 policy: WarmupPolicy = DEFAULT_WARMUP, snapshot_every: int = 50) -> None:
        self.chip_id = chip_id
        self.state = ChipState(chip_id=chip_id)
        self.last_seq = 0
        self._log = log
        self._snapshots = snapshots
        self._policy = policy
        self._snapshot_every = snapshot_every
        self._since_snapshot = 0
        self._replies: OrderedDict[str, CommandReply] = OrderedDict()
        self._last: _LastCommand | None = None

    async def recover(self) -> None:
        snapshot = await self._snapshots.load(self.chip_id)
        if snapshot is not None:
            self.state, self.last_seq = snapshot.state, snapshot.last_seq
            self._replies = OrderedDict(snapshot.replies)
        await self._catch_up()

    async def _catch_up(self) -> None:
        history = await self._log.history(self.chip_id, after_seq=self.last_seq)
        for stored in history.events:
            self._apply(stored)
        # Past any foreign message skipped too: appends expect the subject's last sequence.
        self.last_seq = max(self.last_seq, history.last_seq)

    def _apply(self, stored: StoredEvent) -> None:
        event = stored.event
        if self._last is None or self._last.command_id != event.command_id:
            self._last = _LastCommand(event.command_id, self.state, event.occurred_at)
        self.state = evolve(self.state, event)
        self.last_seq = stored.seq
        self._since_snapshot += 1
        self._last.refs.append(EventRef(type=event_type(event), seq=stored.seq))
        self._remember(event.command_id, CommandReply(
            ok=True, state=state_name(self.state), events=list(self._last.refs)))

    def _remember(self, command_id: str, reply: CommandReply) -> None:
        self._replies[command_id] = reply
        self._replies.move_to_end(command_id)
        while len(self._replies) > REMEMBERED_REPLIES:
            self._replies.popitem(last=False)

    async def handle(self, command: AnyChipCommand, now: datetime) -> CommandReply:
        """Decide and append, retrying on a lost race; the reply for `reply_to`."""
        for attempt in range(MAX_CONFLICT_RETRIES):
            try:
                return await self._attempt(command, now)
            except WriteConflict:
                # Another writer moved the chip (a zombie owner): back off, decide again.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                await self._catch_up()
        raise WriteConflict(chip_events(self.chip_id), self.last_seq)

    async def _attempt(self, command: AnyChipCommand, now: datetime) -> CommandReply:
        if command.command_id in self._replies:
            await self._complete_partial(command)
            return self._replies[command.command_id]
        try:
            events = decide(self.state, command, now, self._policy)
        except ChipRuleBroken as broken:
            # A refusal appends nothing, so no sequence check catches a stale state: look.
            if await self._log.last_seq(self.chip_id) != self.last_seq:
                raise WriteConflict(chip_events(self.chip_id), self.last_seq) from broken
            return CommandReply(ok=False, error=str(broken), state=broken.state,
                                allowed=broken.allowed)
        await self._append(events)
        await self._maybe_snapshot()
        return self._replies[command.command_id]

    async def _complete_partial(self, command: AnyChipCommand) -> None:
        last = self._last
        if last is None or last.command_id != command.command_id:
            return
        try:
            expected = decide(last.before, command, last.at, self._policy)
        except ChipRuleBroken:
            return
        if len(expected) > len(last.refs):
            await self._append(expected[len(last.refs):])

    async def _append(self, events: list[AnyChipEvent]) -> None:
        seqs = await self._log.append(self.chip_id, events, self.last_seq)
        EVENTS_APPENDED.inc(len(seqs))
        for seq, event in zip(seqs, events, strict=True):
            self._apply(StoredEvent(seq, event))

    async def _maybe_snapshot(self) -> None:
        if self._since_snapshot >= self._snapshot_every:
            await self.snapshot()

    async def snapshot(self) -> None:
        if self._since_snapshot == 0:
            return
        await self._snapshots.save(ChipSnapshot(state=self.state, last_seq=self.last_seq,
                                                replies=dict(self._replies)))
        self._since_snapshot = 0
