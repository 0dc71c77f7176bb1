"""Which chip a gateway observation is about: the one map, folded from `Activated`.

Evolution names a chip by the instance we created for it; the Cloud API by the chip's own
number (`chip_phone`, beside Meta's `phone_number_id` as `instance`). `Activated` carries
both (`instance`, `phone_number`), so the health monitor and the doctor-feedback part, which
each follow CHIP_EVENTS, keep one of these and ask it rather than keep a map of their own.
Numbers compare normalised (`phones.py`): the Cloud API may write a Brazilian mobile without
its ninth digit. The latest `Activated` wins: a number Salvy gives out again is the new chip's.
"""

from __future__ import annotations

from julia_chips.contract.chip import Activated, AnyChipEvent
from julia_chips.contract.observations import HealthSignal, InboundMessage, MessageStatus
from julia_chips.phones import normalise_phone


class GatewayChips:
    """Written by `fold` only."""

    def __init__(self) -> None:
        self._by_instance: dict[str, str] = {}  # Evolution instance -> chip id
        self._by_phone: dict[str, str] = {}  # the chip's normalised number -> chip id

    def fold(self, event: AnyChipEvent) -> None:
        if isinstance(event, Activated):
            self._by_instance[event.instance] = event.chip_id
            if event.phone_number:
                self._by_phone[normalise_phone(event.phone_number)] = event.chip_id

    def chip_of(self, signal: HealthSignal) -> str | None:
        """The chip `signal` is about; None when no `Activated` names its instance or number.

        A signal that names the chip's number is found by the number alone: its `instance`
        is the gateway's id for the number, not one of our instances.
        """
        if isinstance(signal, InboundMessage | MessageStatus) and signal.chip_phone:
            return self._by_phone.get(normalise_phone(signal.chip_phone))
        return self._by_instance.get(signal.instance)
