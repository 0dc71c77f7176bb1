"""Read a chip event from a message stored in CHIP_EVENTS, or skip it as foreign.

Only a chip's actor should write `chip.evt.<chip_id>`, but the stream keeps whatever reached
the subject: a reply some worker was tricked into sending there, or bytes published by
anyone who reaches NATS. The stream denies deletes, so such a message stays forever; every
reader must therefore step over it rather than fail on it (a recovery that raises wedges
the chip, a projection that raises stops its read model, an HTTP read answers 500). A
well-formed event of another chip is foreign too: folding it would rewrite that chip's
state from a subject its actor never guarded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.codec import decode_event
from julia_chips.contract.subjects import Stream, chip_events
from julia_chips.jetstream.follower import AlreadySkipped, Decode, Follower
from julia_chips.prometheus import FOREIGN_CHIP_EVENTS

log = logging.getLogger(__name__)


def read_chip_event(reader: str, subject: str, seq: int, data: bytes | None,
                    headers: Mapping[str, str] | None) -> AnyChipEvent | None:
    """The chip event stored at stream sequence `seq` on `subject`; None (logged, counted
    under `reader`) when the message is not one of ours. The log names the subject and the
    sequence, never the body: a foreign body may hold phone numbers or message texts.
    """
    try:
        event = decode_event(data or b"", headers)
    except Exception as err:  # anyone's bytes: whatever fails to read is not our event
        why = f"not a chip event ({type(err).__name__})"
    else:
        if chip_events(event.chip_id) == subject:
            return event
        why = "an event of another chip"
    log.warning("%s: CHIP_EVENTS sequence %d on %s is %s; skipped", reader, seq, subject, why)
    FOREIGN_CHIP_EVENTS.labels(reader=reader).inc()
    return None


def chip_event_of(reader: str) -> Decode[AnyChipEvent]:
    """`read_chip_event` for a follower: a foreign message is logged and counted here."""
    def read(msg: Msg) -> AnyChipEvent:
        event = read_chip_event(reader, msg.subject, msg.metadata.sequence.stream, msg.data,
                                msg.headers)
        if event is None:
            raise AlreadySkipped
        return event
    return read


def follow_chip_events(js: JetStreamContext, on_event: Callable[[AnyChipEvent], None],
                       reader: str = "chip_feed") -> Follower[AnyChipEvent]:
    """Every chip's events from the first, then as they come: for runners that fold the
    audit log themselves rather than depend on the read models (monitor, scheduler)."""
    return Follower(js, Stream.CHIP_EVENTS, "chip.evt.>", chip_event_of(reader),
                    lambda _seq, event: on_event(event), reader=reader)
