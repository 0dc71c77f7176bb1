"""Follow CHIP_EVENTS from the beginning, in order, for runners that keep their own view.

The scheduler and the health monitor must not depend on the PostgreSQL read models, so each
folds the audit log itself: an ordered consumer replays every chip event and then keeps
following. `caught_up` is set once the events stored at start have all been seen, so a
runner never acts on a half-replayed view (e.g. closing a day that was already closed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.stored_chip_event import read_chip_event

log = logging.getLogger(__name__)


class ChipEventFeed:
    def __init__(self, js: JetStreamContext, on_event: Callable[[AnyChipEvent], None]) -> None:
        self._js = js
        self._on_event = on_event
        self._sub: Subscription | None = None
        self._replay_until = 0
        self.last_seq = 0
        self.caught_up = asyncio.Event()
        self._moved = asyncio.Event()  # set on every folded event: wakes `wait_for`

    async def start(self) -> None:
        """Subscribe and wait until the history stored before now has been folded."""
        info = await self._js.stream_info(Stream.CHIP_EVENTS)
        self._replay_until = info.state.last_seq
        if self._replay_until == 0:
            self.caught_up.set()
        self._sub = await self._js.subscribe(
            "chip.evt.>", cb=self._on_msg, ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.caught_up.wait()

    async def _on_msg(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        event = read_chip_event("chip_feed", msg.subject, seq, msg.data, msg.headers)
        if event is not None:
            self._on_event(event)
        self.last_seq = seq
        self._moved.set()
        if seq >= self._replay_until:
            self.caught_up.set()

    async def wait_for(self, seq: int, timeout: float = 10.0) -> None:
        """Until the event at stream sequence `seq` has been folded (tests, read-your-writes)."""
        async with asyncio.timeout(timeout):
            while self.last_seq < seq:
                self._moved.clear()
                await self._moved.wait()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
