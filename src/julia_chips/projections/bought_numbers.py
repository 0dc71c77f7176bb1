"""The numbers activations obtained, from ACTIVATIONS: what a rebuild of `julia_chips` fills
in for chips activated before `Activated` carried the number.

The chip's own events cannot say it for that history (the activator bought the number but
told the chip only the instance and host), and an upcaster sees one stream; the saga's
`NumberObtained` is the record. Only a rebuild reads it: every `Activated` stored since
carries the number, so the incremental projection and a rebuild agree on it.
"""

from __future__ import annotations

import msgspec
from nats.js.client import JetStreamContext

from julia_chips.contract import chip as ev
from julia_chips.contract.activation import (
    AnyActivationEvent,
    NumberObtained,
    decode_activation_event,
)
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.follower import body, replay


class BoughtNumber(msgspec.Struct, frozen=True, kw_only=True):
    phone_number: str  # personal data: never logged unmasked
    salvy_account_id: str


async def bought_numbers(js: JetStreamContext) -> dict[str, BoughtNumber]:
    """Chip id -> the number its activation obtained last (a retried purchase is the same)."""
    found: dict[str, BoughtNumber] = {}

    def take(_seq: int, event: AnyActivationEvent) -> None:
        if isinstance(event, NumberObtained):
            found[event.chip_id] = BoughtNumber(phone_number=event.phone_number,
                                                salvy_account_id=event.salvy_account_id)

    await replay(js, Stream.ACTIVATIONS, "activation.evt.>", body(decode_activation_event),
                 take, reader="rebuild julia_chips (numbers bought)")
    return found


def with_bought_number(event: ev.AnyChipEvent, numbers: dict[str, BoughtNumber]
                       ) -> ev.AnyChipEvent:
    """`event`, or an old `Activated` completed with the number its activation bought."""
    if not isinstance(event, ev.Activated) or event.phone_number is not None:
        return event
    bought = numbers.get(event.chip_id)
    if bought is None:
        return event
    return msgspec.structs.replace(event, phone_number=bought.phone_number,
                                   salvy_account_id=bought.salvy_account_id)
