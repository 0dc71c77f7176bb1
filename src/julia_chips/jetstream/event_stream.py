"""One writer per subject: the load and the append every event log shares.

Chip, route, brake and saga events are all stored the same way: a subject per actor (a
chip, a doctor, the brake, a saga) that one writer at a time owns. The writer reads the
subject, decides, and appends with `Nats-Expected-Last-Subject-Sequence`, so a second writer
(a zombie owner, a deposed leader, a second monitor) loses the race with `WriteConflict`
instead of interleaving; `Nats-Msg-Id = event_id` makes a retried append a duplicate, not a
second copy. Appends go through `AckedPublisher`: the chip's append is the command path's
hot spot, and one path for every log keeps their wire forms identical.

Reads go to the stream's leader (`$JS.API.STREAM.MSG.GET`), never as direct gets: on a
replicated stream a direct get may be answered by a follower that has not yet applied the
append just acked (about 2 in 100 reads right after an append on a 3-node cluster), and a
writer that decides from such a history re-does a step, refuses from an old state, or (the
activator) sees no saga at all and stops driving it. A leader read costs a JSON envelope
(~0.07 ms more per message); the writers read only to recover or to check a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

import msgspec
from nats.js.api import Header
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.acked_publish import AckedPublisher

WRONG_LAST_SEQUENCE = 10071  # JetStream's err_code: the subject moved past the expected sequence


class WriteConflict(Exception):
    """Another writer appended to `subject` since we read it: reload and decide again (or,
    for the balancer, step down: someone else leads)."""

    def __init__(self, subject: str, expected: int) -> None:
        super().__init__(f"{subject} moved past sequence {expected}")
        self.subject = subject
        self.expected = expected


class Event(Protocol):
    """What an append needs of an event: its id is the message id that dedupes a retry."""

    @property
    def event_id(self) -> str: ...


E = TypeVar("E", bound=Event)


class StoredMessage(msgspec.Struct, frozen=True):
    seq: int  # stream sequence
    data: bytes
    headers: Mapping[str, str] | None


class SubjectHistory(msgspec.Struct, frozen=True):
    messages: list[StoredMessage]
    # The subject's last sequence read, foreign messages included: what the next append
    # must expect, or it conflicts with a message that is no event forever.
    last_seq: int


def no_headers(_event: object) -> dict[str, str]:
    """For streams whose events carry no `Julia-Event-*` headers (fleet, activation)."""
    return {}


class EventStream(Generic[E]):
    """The subjects of one stream, each appended to by one writer at a time.

    :param headers: the codec's headers for an event (`contract/codec.event_headers`), or
        `no_headers` where the contract says the stream carries none.
    :param publisher: share one with the writer's other appends (one ack inbox).
    """

    def __init__(self, js: JetStreamContext, stream: Stream,
                 headers: Callable[[E], dict[str, str]],
                 publisher: AckedPublisher | None = None) -> None:
        self._js = js
        self._stream = str(stream)
        self._headers = headers
        self._publisher = publisher or AckedPublisher(js._nc)

    async def last_seq(self, subject: str) -> int:
        """Sequence of the subject's last message, 0 when it has none (the leader's)."""
        try:
            msg = await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def load(self, subject: str, after_seq: int = 0) -> SubjectHistory:
        """The subject's messages after `after_seq`, oldest first, and the last sequence
        read. Every message is returned: telling an event from a foreign one is the
        reader's business, but stepping past both is this one's."""
        last = await self.last_seq(subject)
        stored: list[StoredMessage] = []
        seq = after_seq
        while seq < last:
            try:
                msg = await self._js.get_msg(self._stream, seq=seq + 1, subject=subject,
                                             next=True)
            except NotFoundError:
                break
            assert msg.seq is not None
            seq = msg.seq
            stored.append(StoredMessage(seq, msg.data or b"", msg.headers))
        return SubjectHistory(stored, seq)

    async def append(self, subject: str, events: Sequence[E], expected_last_seq: int
                     ) -> list[int]:
        """Append in order, each expecting the one before; returns their sequences.

        :raises WriteConflict: when `subject`'s last sequence is not `expected_last_seq`.
        """
        seqs = []
        for event in events:
            headers = self._headers(event) | {
                Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected_last_seq),
                Header.MSG_ID: event.event_id,
            }
            try:
                ack = await self._publisher.publish(subject, ENCODER.encode(event), headers)
            except APIError as err:
                if err.err_code == WRONG_LAST_SEQUENCE:
                    raise WriteConflict(subject, expected_last_seq) from err
                raise
            seqs.append(ack.seq)
            expected_last_seq = ack.seq
        return seqs
