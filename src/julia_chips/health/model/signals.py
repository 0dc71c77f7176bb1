"""The health fold's view of a gateway fact: when it happened."""

from __future__ import annotations

from datetime import datetime

from julia_chips.contract.observations import HealthSignal, InboundMessage


def signal_time(signal: HealthSignal) -> datetime:
    """When we learnt of it: our clock at receipt, except an inbound message's own send time."""
    if isinstance(signal, InboundMessage):
        return signal.sent_at
    return signal.observed_at
