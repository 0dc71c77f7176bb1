"""Hand a subscription's messages to a plain function as nats-py reads them.

A callback subscription puts each message on a queue that a task drains, awaiting one
coroutine per message: for an inbox that only settles futures (JetStream's publish acks) that
is a wake-up and two coroutines per message for a dictionary lookup. `deliver_inline` makes
the subscription call `handle(msg)` on nats-py's read loop instead, in arrival order. It
stands in for the subscription's queue (`Subscription._pending_queue`, nats-py < 3, pinned);
`test_inline_delivery` runs it beside a callback subscription on the same messages.

`handle` must not block or await anything: it runs inside nats-py's reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)


class _Inline:
    """The part of `asyncio.Queue` nats-py uses on a subscription's pending queue."""

    def __init__(self, sub: Subscription, handle: Callable[[Msg], None]) -> None:
        self._sub = sub
        self._handle = handle

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)  # counted by nats-py as queued: it is not
        try:
            self._handle(msg)
        except Exception:  # raised into nats-py's reader it would end the connection's reads
            log.exception("message on %s not handled", msg.subject)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        """Nothing is queued, so nothing is done later."""

    async def join(self) -> None:
        """Nothing is queued: a drain has nothing to wait for."""


def deliver_inline(sub: Subscription, handle: Callable[[Msg], None]) -> None:
    """From now on `sub`'s messages go to `handle` as they are read (subscribe with any `cb`;
    its task is stopped here). An exception in `handle` is logged, not raised."""
    sub._pending_queue = _Inline(sub, handle)  # type: ignore[assignment]
    if sub._wait_for_msgs_task is not None:
        sub._wait_for_msgs_task.cancel()


async def subscribe_inline(nc: NATS, subject: str, handle: Callable[[Msg], None]) -> Subscription:
    """Subscribe `subject` with its messages going to `handle` as they are read."""
    sub = await nc.subscribe(subject, cb=_unreachable)
    deliver_inline(sub, handle)
    return sub


async def _unreachable(msg: Msg) -> None:
    raise AssertionError("an inline subscription's messages never reach its callback")
