"""A durable pull consumer that hands each message to a callback as it arrives.

nats-py's `fetch` creates a task, a uuid and a `wait_for` for every message it returns;
on the command path that is a sixth of a worker's CPU. This feed keeps `window` messages
requested from the server (`$JS.API.CONSUMER.MSG.NEXT`) on one inbox subscription and tops
the window up as messages arrive, the way newer clients' `consume()` does. `InlinePullFeed`
goes further for a handler that never awaits: each message is handed over as nats-py reads it;
`GatheringPullFeed` takes them a batch at a time, for a consumer that may be a little late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from julia_chips.jetstream.inline_delivery import subscribe_inline

log = logging.getLogger(__name__)

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"
EXPIRES = 1.0  # seconds a pull request waits on the server; also how long a stop takes


class _PullWindow:
    """What both feeds share: `window` messages asked for, counted off as they come."""

    def __init__(self, nc: NATS, stream: str, durable: str, window: int) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._window = window
        self._requested = 0  # messages asked for and not yet delivered or expired
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._stopping = False
        self._paused = False  # ask for nothing more (InlinePullFeed's back-pressure)
        self._drained = asyncio.Event()
        self._heard_at = time.monotonic()

    async def _top_up(self) -> None:
        if self._stopping or self._paused or not self._wants_more():
            return
        request = self._next_request()
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)

    def _wants_more(self) -> bool:
        return self._requested <= self._window // 2

    def _next_request(self) -> dict[str, object]:
        """Ask for what brings the window back to full (counted as asked for now)."""
        wanted = self._window - self._requested
        self._requested += wanted
        return {"batch": wanted, "expires": int(EXPIRES * 1e9)}

    def _arrived(self, msg: Msg) -> bool:
        """Count one delivery off; True for a message, False for a status (an expired or
        cut request, whose unsent rest is no longer asked for)."""
        self._heard_at = time.monotonic()
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:
            self._requested -= 1
            return True
        if status in ("408", "409", "404"):
            pending = msg.headers.get(PENDING_MESSAGES) if msg.headers else None
            self._requested -= int(pending) if pending else self._requested
            self._requested = max(self._requested, 0)
        return False

    def _note_drained(self) -> None:
        if self._stopping and self._requested == 0:
            self._drained.set()

    async def keep_alive(self) -> None:
        """Call every so often: requests lost to a reconnect or a server restart never
        expire towards us, so after a silence longer than a request's life, ask afresh."""
        if not self._stopping and time.monotonic() - self._heard_at > EXPIRES * 2:
            self._heard_at = time.monotonic()
            self._requested = 0
            await self._top_up()

    async def stop(self) -> None:
        """Ask for nothing more and wait until the open requests expire, so no message is
        left delivered to an inbox nobody reads (it would wait out `ack_wait`)."""
        self._stopping = True
        if self._requested:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), EXPIRES + 0.5)
        if self._sub is not None:
            await self._sub.unsubscribe()


class PullFeed(_PullWindow):
    """:param on_message: awaited for each message in arrival order; it may apply back-pressure
    by awaiting (the next message waits for it)."""

    def __init__(self, nc: NATS, stream: str, durable: str,
                 on_message: Callable[[Msg], Awaitable[None]], window: int = 256) -> None:
        super().__init__(nc, stream, durable, window)
        self._on_message = on_message

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_delivery,
                                             pending_msgs_limit=self._window * 4)
        await self._top_up()

    async def _on_delivery(self, msg: Msg) -> None:
        if self._arrived(msg):
            await self._on_message(msg)
        self._note_drained()
        await self._top_up()


class InlinePullFeed(_PullWindow):
    """Hands each message to a plain function as nats-py reads it (`subscribe_inline`): no
    queue, task or coroutine per message. The function must not block; it applies
    back-pressure with `pause` (ask for no more; what was asked for still comes) and
    `resume`.

    :param on_message: called for each message in arrival order.
    """

    def __init__(self, nc: NATS, stream: str, durable: str, on_message: Callable[[Msg], None],
                 window: int = 256) -> None:
        super().__init__(nc, stream, durable, window)
        self._on_message = on_message
        self._asking: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await subscribe_inline(self._nc, self._inbox, self._on_delivery)
        await self._top_up()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._ask_for_more()

    def _on_delivery(self, msg: Msg) -> None:
        message = self._arrived(msg)
        if message:
            self._on_message(msg)
        self._note_drained()
        self._delivered(message)

    def _delivered(self, message: bool) -> None:
        """What one delivery (a message, or a status if not `message`) leads to: here, the
        window topped up."""
        self._ask_for_more()

    def _ask_for_more(self) -> None:
        """A top-up in a task of its own (publishing awaits), one at a time."""
        if (self._paused or self._stopping or not self._wants_more()
                or (self._asking is not None and not self._asking.done())):
            return
        self._asking = asyncio.create_task(self._top_up())
        self._asking.add_done_callback(_report_failure)


class GatheringPullFeed(InlinePullFeed):
    """An `InlinePullFeed` that gathers instead of keeping `window` asked for: it waits for
    one message, then lets the rest gather for `linger` seconds and takes them with one
    `no_wait` request of up to `window` (at once again when that comes back full, after
    another `linger` when it comes back short, waiting for one again when it finds none).
    Each message the server hands a waiting request costs a write on both sides and a wakeup
    here; on loopback the write is most of a message's cost, so a consumer that can be
    `linger` late pays it once a batch rather than once a message.

    :param linger: seconds a message may wait so that others come with it.
    """

    def __init__(self, nc: NATS, stream: str, durable: str, on_message: Callable[[Msg], None],
                 window: int = 256, linger: float = 0.01) -> None:
        super().__init__(nc, stream, durable, on_message, window)
        self._linger = linger
        self._gathering = False  # the open request takes what gathered; else it waits for one
        self._found = 0  # messages the open request has brought
        self._later: asyncio.TimerHandle | None = None

    async def stop(self) -> None:
        if self._later is not None:
            self._later.cancel()
        await super().stop()

    def _wants_more(self) -> bool:
        # one request at a time; <= 0: a message of a request given up on (`keep_alive`) may
        # still come in
        return self._requested <= 0

    def _next_request(self) -> dict[str, object]:
        self._found = 0
        if not self._gathering:
            self._requested = 1
            return {"batch": 1, "expires": int(EXPIRES * 1e9)}
        self._requested = self._window
        return {"batch": self._window, "no_wait": True}

    def _delivered(self, message: bool) -> None:
        self._found += message
        if self._requested > 0:
            return  # the open request has more to bring
        waited_for_one, self._gathering = not self._gathering, self._found > 0
        if self._gathering and (waited_for_one or not message):  # others may be on the way
            self._later = asyncio.get_running_loop().call_later(self._linger,
                                                                self._ask_for_more)
        else:  # it came back full (more may wait), or it found nothing
            self._ask_for_more()


def _report_failure(task: asyncio.Task[None]) -> None:
    """A lost top-up is made good by `keep_alive`; it is worth a line in the log."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("pull request not sent (%r)", task.exception())


def deliveries(msg: Msg) -> int:
    """How many times JetStream delivered `msg`, read straight from its ack subject
    (`msg.metadata` also parses timestamps into datetimes: a twentieth of the CPU here)."""
    return _ack_token(msg, 0) or msg.metadata.num_delivered


def stream_seq(msg: Msg) -> int:
    """The stream sequence of a JetStream delivery, from its ack subject like `deliveries`."""
    return _ack_token(msg, 1) or msg.metadata.sequence.stream


def _ack_token(msg: Msg, after_delivered: int) -> int | None:
    """v1: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...` (9 tokens); v2 adds a
    domain and an account hash after `ACK` (12 tokens). None: not an ack subject."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[4 + after_delivered])
    if len(tokens) >= 12:
        return int(tokens[6 + after_delivered])
    return None
