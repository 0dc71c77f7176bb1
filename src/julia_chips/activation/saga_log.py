"""The activator sagas' events on JetStream (`activation.evt.<chip_id>`, stream ACTIVATIONS).

Appends carry `Nats-Expected-Last-Subject-Sequence` (one driver per saga: a second one loses
the race instead of interleaving) and `Nats-Msg-Id = event_id` (a retried append is stored
once).
"""

from __future__ import annotations

from collections.abc import Sequence

from nats.js.api import ConsumerConfig, DeliverPolicy, Header
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from julia_chips.chip.event_log import WRONG_LAST_SEQUENCE
from julia_chips.contract.activation import (
    ActivationCompleted,
    ActivationEvent,
    AnyActivationEvent,
    FailureReported,
    decode_activation_event,
    encode_activation_event,
)
from julia_chips.contract.subjects import Stream, activation_events


class SagaWriteConflict(Exception):
    """Another driver appended to this saga since we read it."""


class ActivationLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def load(self, chip_id: str) -> tuple[list[AnyActivationEvent], int]:
        """The saga's events, oldest first, and the sequence of the last one (0: none)."""
        subject, seq, last = activation_events(chip_id), 1, 0
        events: list[AnyActivationEvent] = []
        while True:
            try:
                msg = await self._js.get_msg(Stream.ACTIVATIONS, seq=seq, subject=subject,
                                             next=True, direct=True)
            except NotFoundError:
                return events, last
            assert msg.seq is not None and msg.data is not None
            events.append(decode_activation_event(msg.data))
            last, seq = msg.seq, msg.seq + 1

    async def append(self, chip_id: str, events: Sequence[ActivationEvent],
                     expected_last_seq: int) -> int:
        """Append in order; returns the new last sequence. :raises SagaWriteConflict:"""
        last = expected_last_seq
        for event in events:
            headers = {Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last),
                       Header.MSG_ID: event.event_id}
            try:
                ack = await self._js.publish(activation_events(chip_id),
                                             encode_activation_event(event),
                                             headers=headers)  # type: ignore[arg-type]
            except APIError as err:
                if err.err_code == WRONG_LAST_SEQUENCE:
                    raise SagaWriteConflict(chip_id) from err
                raise
            last = ack.seq
        return last

    async def unfinished(self) -> list[str]:
        """Chips whose saga has not ended: the last event of each saga, read once at start."""
        info = await self._js.stream_info(Stream.ACTIVATIONS)
        if not info.state.messages:
            return []
        config = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                                filter_subject="activation.evt.>", inactive_threshold=30.0)
        sub = await self._js.pull_subscribe("activation.evt.>", stream=Stream.ACTIVATIONS,
                                            config=config)
        open_sagas: list[str] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(256, timeout=0.5)
                except TimeoutError:
                    return open_sagas
                for msg in batch:
                    event = decode_activation_event(msg.data)
                    if not isinstance(event, ActivationCompleted | FailureReported):
                        open_sagas.append(event.chip_id)
                    await msg.ack()
                if batch and batch[-1].metadata.num_pending == 0:
                    return open_sagas
        finally:
            await sub.unsubscribe()
