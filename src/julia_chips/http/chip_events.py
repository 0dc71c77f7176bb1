"""`/chips/{id}/events`: a chip's history replayed from JetStream, the audit log itself.

Pages walk the chip's subject with direct gets (`next=True`), so a page costs one request
per event and never a consumer. A `since` filter scans at most SCAN_LIMIT events per page
and hands back `next_seq` to go on, so no request runs unbounded.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from nats.js.errors import NotFoundError

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract.codec import event_type
from julia_chips.contract.subjects import Stream, chip_events
from julia_chips.http.errors import ApiProblem
from julia_chips.http.keys import NATS_CONN
from julia_chips.http.params import EventsQuery, chip_id, query
from julia_chips.http.responses import EventsPage, StoredEventView, json
from julia_chips.jetstream.stored_chip_event import read_chip_event
from julia_chips.privacy import without_link_codes

SCAN_LIMIT = 5000


async def list_events(request: web.Request) -> web.Response:
    return json(await events_page(request, chip_id(request), query(request, EventsQuery)))


async def events_page(request: web.Request, chip: str, q: EventsQuery) -> EventsPage:
    """One page of the chip's history, which the dashboard's chip page shows too.
    :raises ApiProblem: 404 for a chip with no event."""
    js = request.app[NATS_CONN].jetstream()
    last = await JetStreamChipEventLog(js).last_seq(chip)
    if last == 0:
        raise ApiProblem(404, f"no chip {chip}", "id")
    items: list[StoredEventView] = []
    seq, scanned = q.from_seq or 1, 0
    while seq <= last and len(items) < q.limit and scanned < SCAN_LIMIT:
        try:
            msg = await js.get_msg(str(Stream.CHIP_EVENTS), seq=seq, subject=chip_events(chip),
                                   next=True, direct=True)
        except NotFoundError:
            seq = last + 1
            break
        assert msg.seq is not None
        scanned += 1
        seq = msg.seq + 1
        event = read_chip_event("http", chip_events(chip), msg.seq, msg.data, msg.headers)
        if event is None:  # not ours: the audit log shows only what the actor wrote
            continue
        if q.since is None or event.occurred_at >= q.since:
            body: dict[str, Any] = without_link_codes(msgspec.to_builtins(event))
            items.append(StoredEventView(seq=msg.seq, type=event_type(event),
                                         occurred_at=event.occurred_at, event=body))
    return EventsPage(chip_id=chip, items=items, next_seq=seq if seq <= last else None)
