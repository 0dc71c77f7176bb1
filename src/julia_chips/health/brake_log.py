"""The fleet brake's history on `fleet.evt.brake` (stream FLEET_EVENTS): load it, append to it.

Appends carry the expected last subject sequence, so two monitors that both decide to
engage the brake record it once: the loser gets a conflict, reloads, and sees it engaged.
"""

from __future__ import annotations

from typing import cast

import msgspec
from nats.js.api import Header
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from julia_chips.chip.event_log import WRONG_LAST_SEQUENCE
from julia_chips.contract.fleet import AnyFleetEvent
from julia_chips.contract.subjects import FLEET_BRAKE, Stream
from julia_chips.health.model.brake import BrakeState, evolve

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(AnyFleetEvent)


class BrakeLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self.last_seq = 0

    async def load(self, state: BrakeState) -> BrakeState:
        """Fold the brake events stored after `last_seq` into `state`."""
        seq = self.last_seq + 1
        while True:
            try:
                msg = await self._js.get_msg(Stream.FLEET_EVENTS, seq=seq, subject=FLEET_BRAKE,
                                             next=True, direct=True)
            except NotFoundError:
                return state
            assert msg.seq is not None and msg.data is not None
            state = evolve(state, cast(AnyFleetEvent, _DECODER.decode(msg.data)))
            self.last_seq = seq = msg.seq
            seq += 1

    async def append(self, event: AnyFleetEvent) -> bool:
        """False when another writer got there first (reload before deciding again)."""
        headers = {str(Header.EXPECTED_LAST_SUBJECT_SEQUENCE): str(self.last_seq),
                   str(Header.MSG_ID): event.event_id}
        try:
            ack = await self._js.publish(FLEET_BRAKE, _ENCODER.encode(event), headers=headers)
        except APIError as err:
            if err.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        self.last_seq = ack.seq
        return True
