"""`GET /events/stream`: chip and fleet events as server-sent events, for the dashboard.

Fed from the streams, not by reading the database in a loop: each client gets the project's
one follower (`jetstream/follower.py`, an ordered consumer) on CHIP_EVENTS and, unless it
watches one chip, on FLEET_EVENTS. It starts at the streams' ends, or after the position
the client names: the page's `after` (the read models' checkpoints it was drawn from), or
`Last-Event-ID` when the browser reconnects. Every message's id is that position,
`<CHIP_EVENTS seq>:<FLEET_EVENTS seq>`, so a resumed feed misses and repeats nothing.

A chip event is folded onto the chip's row with the projection's own fold
(`projections/rows/chip.py` `apply`), so the browser is told the state before and after
without a second copy of the rules. The row is the read model's, read once per chip and
client; when the read model already holds the event (the projection was quicker than the
feed), the row before it is folded from the chip's own history instead, so "before" is
always the state before this event.

No connection leaks: at most MAX_CLIENTS at once (503 beyond), a comment every HEARTBEAT
seconds (which also finds a client that left), a client that falls MAX_QUEUED events
behind is closed (it resumes from its last id), and every feed ends on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, cast

import msgspec
from aiohttp import web

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.fleet import AnyFleetEvent
from julia_chips.contract.subjects import Stream, chip_events, is_uuid
from julia_chips.http.dashboard.views import ChipUpdate, chip_update, fleet_update
from julia_chips.http.errors import UNAVAILABLE, ApiProblem
from julia_chips.http.keys import NATS_CONN, POOL
from julia_chips.http.params import query
from julia_chips.jetstream.follower import Follower, body
from julia_chips.jetstream.stored_chip_event import chip_event_of
from julia_chips.projections.audit import read_row
from julia_chips.projections.rows.chip import ChipRow, apply

log = logging.getLogger(__name__)

MAX_CLIENTS = 32
HEARTBEAT = 15.0  # seconds between comments on an idle feed
MAX_QUEUED = 1000  # events a client may fall behind before it is closed
READER = "dashboard"
_POSITION = re.compile(r"^(\d{1,19}):(\d{1,19})$")
_FLEET = msgspec.json.Decoder(AnyFleetEvent)
_ENCODER = msgspec.json.Encoder()

Position = Annotated[str, msgspec.Meta(
    pattern=_POSITION.pattern,
    description="`<CHIP_EVENTS seq>:<FLEET_EVENTS seq>`: send what follows (the id of the "
    "last message seen; `Last-Event-ID` takes precedence)")]


class FeedQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    chip: uuid.UUID | None = None  # only this chip's events (and no fleet events)
    after: Position | None = None


Item = tuple[str, int, Any]  # ("chip" | "fleet", stream sequence, event)


class Feed:
    """One client's queue: the followers put, the response writer takes."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self.ended = False

    def put(self, item: Item) -> None:
        if self.ended:
            return
        if self._queue.qsize() >= MAX_QUEUED:
            log.warning("dashboard feed %d events behind; closed (the client resumes)",
                        MAX_QUEUED)
            self.end()
            return
        self._queue.put_nowait(item)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)

    async def next(self, timeout: float) -> Item | None:
        """The next item; None once ended. :raises TimeoutError: nothing within `timeout`."""
        return await asyncio.wait_for(self._queue.get(), timeout)


class LiveFeeds:
    """The open feeds of one app."""

    def __init__(self, max_clients: int) -> None:
        self._max = max_clients
        self._open: set[Feed] = set()

    @property
    def count(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def opened(self) -> Iterator[Feed]:
        """:raises ApiProblem: 503 when MAX_CLIENTS feeds are open."""
        if len(self._open) >= self._max:
            raise ApiProblem(503, f"{self._max} live feeds open already; retry shortly")
        feed = Feed()
        self._open.add(feed)
        try:
            yield feed
        finally:
            self._open.discard(feed)

    async def close_all(self, _app: web.Application) -> None:
        """`on_shutdown`: every feed ends, so the server does not wait on open connections."""
        for feed in list(self._open):
            feed.end()


LIVE_FEEDS = web.AppKey("live_feeds", LiveFeeds)


def attach_live_feeds(app: web.Application) -> None:
    app[LIVE_FEEDS] = feeds = LiveFeeds(MAX_CLIENTS)
    app.on_shutdown.append(feeds.close_all)


def _fleet_event(data: bytes) -> AnyFleetEvent:
    return cast(AnyFleetEvent, _FLEET.decode(data))


async def _start_position(request: web.Request, given: str | None) -> tuple[int, int]:
    """Where the feed starts: `Last-Event-ID`, else `after`, else the streams' ends."""
    header = request.headers.get("Last-Event-ID")
    if header is not None:
        found = _POSITION.match(header)
        if found is None:
            raise ApiProblem(400, "Last-Event-ID must be <chip seq>:<fleet seq>",
                             "Last-Event-ID")
        return int(found.group(1)), int(found.group(2))
    if given is not None:
        chip, fleet = given.split(":")
        return int(chip), int(fleet)
    js = request.app[NATS_CONN].jetstream()
    ends = [int((await js.stream_info(str(s))).state.last_seq or 0)
            for s in (Stream.CHIP_EVENTS, Stream.FLEET_EVENTS)]
    return ends[0], ends[1]


def sse_message(name: str, event_id: str, data: bytes) -> bytes:
    """One server-sent event; msgspec's JSON has no raw newline, so `data` is one line."""
    return b"event: %s\nid: %s\ndata: %s\n\n" % (name.encode(), event_id.encode(), data)


async def event_stream(request: web.Request) -> web.StreamResponse:
    q = query(request, FeedQuery)
    chip_seq, fleet_seq = await _start_position(request, q.after)
    js = request.app[NATS_CONN].jetstream()
    subjects = chip_events(str(q.chip)) if q.chip else "chip.evt.>"
    with request.app[LIVE_FEEDS].opened() as feed:
        followers: list[Follower[Any]] = [Follower(
            js, Stream.CHIP_EVENTS, subjects,
            chip_event_of(READER), lambda seq, e: feed.put(("chip", seq, e)), reader=READER,
            after_seq=chip_seq)]
        if q.chip is None:
            followers.append(Follower(
                js, Stream.FLEET_EVENTS, "fleet.evt.>", body(_fleet_event),
                lambda seq, e: feed.put(("fleet", seq, e)), reader=READER,
                after_seq=fleet_seq))
        try:
            for follower in followers:
                await follower.start()
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-store",
                "X-Accel-Buffering": "no"})
            await response.prepare(request)
            await response.write(b"retry: 2000\n: live\n\n")
            await _pump(request, feed, response, chip_seq, fleet_seq)
        finally:
            for follower in followers:
                await follower.stop()
    return response


async def _pump(request: web.Request, feed: Feed, response: web.StreamResponse,
                chip_seq: int, fleet_seq: int) -> None:
    """Write the feed until it ends, the client leaves, or PostgreSQL is away (the client
    reconnects with its last id)."""
    rows: dict[str, ChipRow | None] = {}
    try:
        while True:
            try:
                item = await feed.next(HEARTBEAT)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if item is None:
                return
            name, seq, event = item
            if name == "chip":
                chip_seq = seq
                data = _ENCODER.encode(await _chip_update(request, rows, seq, event))
            else:
                fleet_seq = seq
                data = _ENCODER.encode(fleet_update(seq, event))
            await response.write(sse_message(name, f"{chip_seq}:{fleet_seq}", data))
    except ConnectionResetError:
        return  # the client left
    except UNAVAILABLE as err:
        log.warning("dashboard feed: PostgreSQL unavailable (%s); closed", type(err).__name__)


async def _chip_update(request: web.Request, rows: dict[str, ChipRow | None], seq: int,
                       event: AnyChipEvent) -> ChipUpdate:
    if event.chip_id not in rows:
        rows[event.chip_id] = await _row_before(request, event.chip_id, seq)
    before = rows[event.chip_id]
    rows[event.chip_id] = after = apply(before, seq, event)
    return chip_update(seq, event, before, after)


async def _row_before(request: web.Request, chip: str, seq: int) -> ChipRow | None:
    """The chip's row as it was before the event at `seq`."""
    if not is_uuid(chip):
        return None  # no row for it in the read model either (projections/chips.py)
    row = await read_row(request.app[POOL], chip)
    if row is None or row.last_seq < seq:
        return row
    row = None
    for stored in await JetStreamChipEventLog(request.app[NATS_CONN].jetstream()).load(chip):
        if stored.seq >= seq:
            break
        row = apply(row, stored.seq, stored.event)
    return row
