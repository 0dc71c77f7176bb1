"""Chips and signals for the health and evidence tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from julia_chips.chip.model.lifecycle import ChipState
from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status
from julia_chips.contract.observations import (
    ConnectionUpdate,
    HealthSignal,
    InboundMessage,
    MessageStatus,
)
from julia_chips.health.model.monitoring import ChipHealth, follow, observe

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def healthy_chip(status: Status = Status.WARMING, version: int = 3) -> ChipHealth:
    return ChipHealth(chip=ChipState(chip_id="chip-1", status=status, instance="inst-1",
                                     version=version, daily_cap=20))


def receipt(n: int, status: str, at: datetime = NOW) -> MessageStatus:
    return MessageStatus(instance="inst-1", message_id=f"m{n}", remote_phone=f"+55119000{n:05d}",
                         status=status, observed_at=at)  # type: ignore[arg-type]


def reply(n: int, at: datetime = NOW) -> InboundMessage:
    return InboundMessage(instance="inst-1", message_id=f"in{n}", from_phone=f"+55119000{n:05d}",
                          text="sim, tenho interesse", sent_at=at)


def closed(code: int | None, state: str = "close", at: datetime = NOW) -> ConnectionUpdate:
    return ConnectionUpdate(instance="inst-1", state=state,  # type: ignore[arg-type]
                            status_reason=code, observed_at=at)


def fold(health: ChipHealth, *signals: HealthSignal) -> ChipHealth:
    for signal in signals:
        health = observe(health, signal)
    return health


def conversation(n: int, delivered: bool = True, replied: bool = False,
                 at: datetime = NOW) -> list[HealthSignal]:
    signals: list[HealthSignal] = [receipt(n, "SERVER_ACK", at)]
    signals.append(receipt(n, "DELIVERY_ACK" if delivered else "ERROR", at))
    if replied:
        signals += [receipt(n, "READ", at), reply(n, at + timedelta(minutes=1))]
    return signals


def apply(health: ChipHealth, event: ev.AnyChipEvent) -> ChipHealth:
    from julia_chips.chip.model.lifecycle import evolve
    return follow(health, event, evolve(health.chip, event))
