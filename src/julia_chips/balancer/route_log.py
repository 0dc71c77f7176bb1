"""Where the balancer reads and writes: route events, the message ledger, stream replays.

Route events are appended like every event log's (`jetstream/event_stream.py`), expecting
the doctor subject's last sequence: that is the fence that keeps a deposed leader (paused,
partitioned, not yet aware its lease expired) from assigning a doctor the new leader has
already assigned. Its `WriteConflict` means someone else leads: the leader steps down.

Both share the leader's `AckedPublisher` (one ack inbox, msgspec-decoded acks): nats-py's
`js.publish` sets up a request per call, and these appends are most of a request's cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy, Header
from nats.js.client import JetStreamContext

from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER, event_headers
from julia_chips.contract.subjects import Stream, message_events, route_events
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.event_stream import EventStream


class RouteLog:
    """Appends route events, tracking each doctor's last subject sequence for the fence."""

    def __init__(self, js: JetStreamContext, publisher: AckedPublisher) -> None:
        self._stream: EventStream[rt.RouteEvent] = EventStream(js, Stream.ROUTE_EVENTS,
                                                               event_headers, publisher)
        self.doctor_seq: dict[str, int] = {}

    def note(self, doctor_id: str, seq: int) -> None:
        self.doctor_seq[doctor_id] = seq

    async def append(self, event: rt.RouteEvent) -> int:
        """:raises WriteConflict: another balancer wrote to the doctor: it leads, not us."""
        [seq] = await self._stream.append(route_events(event.doctor_id), [event],
                                          self.doctor_seq.get(event.doctor_id, 0))
        self.doctor_seq[event.doctor_id] = seq
        return seq


async def append_message_event(publisher: AckedPublisher, event: msg.MessageEvent) -> bool:
    """Append to the ledger; False when the same event id was already stored (a duplicate)."""
    headers = event_headers(event) | {Header.MSG_ID: event.event_id}
    ack = await publisher.publish(message_events(event.chip_id), ENCODER.encode(event), headers)
    return not ack.duplicate


async def replay(js: JetStreamContext, stream: Stream, subject: str,
                 apply: Callable[[Msg], None], since: datetime | None = None,
                 live: bool = False) -> Any:
    """Feed every stored message to `apply`, oldest first; returns once caught up.

    :param since: skip messages older than this (the ledger only matters for a week).
    :param live: keep the subscription (returned) to go on feeding new messages.
    """
    caught_up = asyncio.Event()

    async def on_msg(m: Msg) -> None:
        apply(m)
        if m.metadata.num_pending == 0:
            caught_up.set()

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME,
                            opt_start_time=since) if since else None
    sub = await js.subscribe(subject, stream=str(stream), cb=on_msg, ordered_consumer=True,
                             config=config, deliver_policy=None if since else DeliverPolicy.ALL)
    info = await sub.consumer_info()
    # Nothing left and nothing handed to us yet: caught up already. The consumer's own count,
    # not the stream sequence: a consumer starting by time after every stored message reports
    # the stream's last sequence as "delivered" though it delivered nothing.
    if info.num_pending == 0 and not (info.delivered and info.delivered.consumer_seq):
        caught_up.set()
    await caught_up.wait()
    if live:
        return sub
    await sub.unsubscribe()
    return None
