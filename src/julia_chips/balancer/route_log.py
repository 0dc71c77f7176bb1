"""Where the balancer writes: route events and the message ledger.

Route events are appended like every event log's (`jetstream/event_stream.py`), expecting
the doctor subject's last sequence: that is the fence that keeps a deposed leader (paused,
partitioned, not yet aware its lease expired) from assigning a doctor the new leader has
already assigned. Its `WriteConflict` means someone else leads: the leader steps down.

Both share the leader's `AckedPublisher` (one ack inbox, msgspec-decoded acks): nats-py's
`js.publish` sets up a request per call, and these appends are most of a request's cost.
"""

from __future__ import annotations

from nats.js.api import Header
from nats.js.client import JetStreamContext

from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER, event_headers
from julia_chips.contract.subjects import Stream, message_events, route_events
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.event_stream import EventStream
from julia_chips.privacy.doctor_keys import DoctorKeys


class RouteLog:
    """Appends route events, tracking each doctor's last subject sequence for the fence."""

    def __init__(self, js: JetStreamContext, publisher: AckedPublisher, keys: DoctorKeys
                 ) -> None:
        self._stream: EventStream[rt.RouteEvent] = EventStream(js, Stream.ROUTE_EVENTS,
                                                               event_headers, publisher)
        self._keys = keys
        self.doctor_seq: dict[str, int] = {}

    def note(self, doctor_id: str, seq: int) -> None:
        self.doctor_seq[doctor_id] = seq

    async def append(self, event: rt.RouteEvent) -> int:
        """A queued send's phone and text are stored sealed under the doctor's key (made on
        first use), never in the clear.

        :raises WriteConflict: another balancer wrote to the doctor: it leads, not us."""
        if isinstance(event, rt.RequestQueued):
            event = event.sealed_with(await self._keys.ensure(event.doctor_id))
        elif isinstance(event, rt.DoctorErased):
            self._keys.forget(event.doctor_id)  # the erasure purges the stored key next
        [seq] = await self._stream.append(route_events(event.doctor_id), [event],
                                          self.doctor_seq.get(event.doctor_id, 0))
        self.doctor_seq[event.doctor_id] = seq
        return seq


async def append_message_event(publisher: AckedPublisher, event: msg.MessageEvent) -> bool:
    """Append to the ledger; False when the same event id was already stored (a duplicate)."""
    headers = event_headers(event) | {Header.MSG_ID: event.event_id}
    ack = await publisher.publish(message_events(event.chip_id), ENCODER.encode(event), headers)
    return not ack.duplicate
