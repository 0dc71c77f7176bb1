"""Where the balancer reads and writes: route events, the message ledger, stream replays.

Route events are appended with `Nats-Expected-Last-Subject-Sequence` on the doctor's
subject: that is the fence that keeps a deposed leader (paused, partitioned, not yet aware
its lease expired) from assigning a doctor the new leader has already assigned.

Writes go through `AckedPublisher` (one shared ack inbox, msgspec-decoded acks): nats-py's
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
from nats.js.errors import APIError

from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import JuliaHeader, Stream, message_events, route_events
from julia_chips.jetstream.acked_publish import AckedPublisher

WRONG_LAST_SEQUENCE = 10071


class BalancerFenced(Exception):
    """Someone else wrote to a doctor's route subject: this balancer is no longer the leader."""


def _headers(event: rt.RouteEvent | msg.MessageEvent) -> dict[str, str]:
    return {JuliaHeader.EVENT_TYPE: str(event.__struct_config__.tag),
            JuliaHeader.EVENT_VERSION: "1", Header.MSG_ID: event.event_id}


class RouteLog:
    """Appends route events, tracking each doctor's last subject sequence for the fence."""

    def __init__(self, publisher: AckedPublisher) -> None:
        self._publisher = publisher
        self.doctor_seq: dict[str, int] = {}

    def note(self, doctor_id: str, seq: int) -> None:
        self.doctor_seq[doctor_id] = seq

    async def append(self, event: rt.RouteEvent) -> int:
        headers = _headers(event) | {
            Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(self.doctor_seq.get(event.doctor_id, 0))}
        try:
            ack = await self._publisher.publish(route_events(event.doctor_id),
                                                ENCODER.encode(event), headers)
        except APIError as err:
            if err.err_code == WRONG_LAST_SEQUENCE:
                raise BalancerFenced(f"doctor {event.doctor_id} was written by another "
                                     "balancer") from err
            raise
        self.doctor_seq[event.doctor_id] = ack.seq
        return ack.seq


async def append_message_event(publisher: AckedPublisher, event: msg.MessageEvent) -> bool:
    """Append to the ledger; False when the same event id was already stored (a duplicate)."""
    ack = await publisher.publish(message_events(event.chip_id), ENCODER.encode(event),
                                  _headers(event))
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


def decode_route(m: Msg) -> rt.AnyRouteEvent:
    return rt.decode_route_event(m.data)
