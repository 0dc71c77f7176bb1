"""The fleet brake's history on `fleet.evt.brake` (stream FLEET_EVENTS): load it, append to it.

Appends expect the last subject sequence (`jetstream/event_stream.py`), so two monitors that
both decide to engage the brake record it once: the loser gets `WriteConflict`, reloads, and
sees it engaged. Brake events carry no `Julia-Event-*` headers (docs/contract.md).
"""

from __future__ import annotations

from typing import cast

import msgspec
from nats.js.client import JetStreamContext

from julia_chips.contract.fleet import AnyFleetEvent, FleetEvent
from julia_chips.contract.subjects import FLEET_BRAKE, Stream
from julia_chips.health.model.brake import BrakeState, evolve
from julia_chips.jetstream.event_stream import EventStream, no_headers

_DECODER = msgspec.json.Decoder(AnyFleetEvent)


class BrakeLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._stream: EventStream[FleetEvent] = EventStream(js, Stream.FLEET_EVENTS, no_headers)
        self.last_seq = 0

    async def load(self, state: BrakeState) -> BrakeState:
        """Fold the brake events stored after `last_seq` into `state`."""
        read = await self._stream.load(FLEET_BRAKE, self.last_seq)
        for msg in read.messages:
            state = evolve(state, cast(AnyFleetEvent, _DECODER.decode(msg.data)))
        self.last_seq = read.last_seq
        return state

    async def append(self, event: AnyFleetEvent) -> None:
        """:raises WriteConflict: when another writer got there first (reload, decide again)."""
        [self.last_seq] = await self._stream.append(FLEET_BRAKE, [event], self.last_seq)
