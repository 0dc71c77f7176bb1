"""The activator sagas' events on JetStream (`activation.evt.<chip_id>`, stream ACTIVATIONS).

Loaded and appended as every event log is (`jetstream/event_stream.py`): the expected last
subject sequence makes a second driver of the same saga lose the race instead of
interleaving, and `Nats-Msg-Id = event_id` stores a retried append once. Saga events carry
no `Julia-Event-*` headers (docs/contract.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from julia_chips.contract.activation import (
    ActivationCompleted,
    ActivationEvent,
    AnyActivationEvent,
    FailureReported,
    LinkFailureReported,
    RelinkCompleted,
    RetirementCompleted,
    decode_activation_event,
)
from julia_chips.contract.subjects import Stream, activation_events
from julia_chips.jetstream.event_stream import EventStream, no_headers

UNFINISHED_PATIENCE = 5  # empty fetches in a row (2 s each) before the start-up read gives up


class ActivationLog:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._stream: EventStream[ActivationEvent] = EventStream(js, Stream.ACTIVATIONS,
                                                                 no_headers)

    async def load(self, chip_id: str) -> tuple[list[AnyActivationEvent], int]:
        """The saga's events, oldest first, and the sequence of the last one (0: none)."""
        read = await self._stream.load(activation_events(chip_id))
        return [decode_activation_event(m.data) for m in read.messages], read.last_seq

    async def append(self, chip_id: str, events: Sequence[ActivationEvent],
                     expected_last_seq: int) -> int:
        """Append in order; returns the new last sequence. :raises WriteConflict:"""
        seqs = await self._stream.append(activation_events(chip_id), events, expected_last_seq)
        return seqs[-1] if seqs else expected_last_seq

    async def unfinished(self) -> list[str]:
        """Chips whose saga has not ended: the last event of each saga, read once at start.

        Read until the consumer's own count of what it holds is delivered, not until a
        fetch comes back empty: on a cluster a fetch can time out while the consumer's
        replica settles, and an empty answer taken for "no more" would leave every saga
        after it undriven, with nothing said."""
        info = await self._js.stream_info(Stream.ACTIVATIONS)
        if not info.state.messages:
            return []
        config = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                                filter_subject="activation.evt.>", inactive_threshold=30.0)
        sub = await self._js.pull_subscribe("activation.evt.>", stream=Stream.ACTIVATIONS,
                                            config=config)
        open_sagas: list[str] = []
        try:
            remaining, silent = (await sub.consumer_info()).num_pending, 0
            while remaining:
                try:
                    batch = await sub.fetch(min(256, remaining), timeout=2.0)
                except TimeoutError:
                    silent += 1
                    if silent == UNFINISHED_PATIENCE:  # the supervisor logs it and retries
                        raise TimeoutError(f"{remaining} saga(s) left unread") from None
                    continue
                silent = 0
                for msg in batch:
                    event = decode_activation_event(msg.data)
                    if not _ends_a_run(event):
                        open_sagas.append(event.chip_id)
                    await msg.ack()
                remaining = batch[-1].metadata.num_pending if batch else remaining
            return open_sagas
        finally:
            await sub.unsubscribe()


def _ends_a_run(event: AnyActivationEvent) -> bool:
    """The saga has nothing left to do after this event (until a chip event wakes it)."""
    if isinstance(event, LinkFailureReported):
        return event.give_up
    return isinstance(event, ActivationCompleted | FailureReported | RetirementCompleted
                      | RelinkCompleted)
