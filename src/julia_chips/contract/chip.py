"""Chip lifecycle events: the audit log on `chip.evt.<chip_id>`.

Tags are pinned to DESIGN.md's wire names. Fields may be added (with defaults), never
renamed; a changed meaning is a new event.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

import msgspec


class Status(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVATING = "activating"
    WARMING = "warming"
    READY = "ready"
    ACTIVE = "active"
    COOLING = "cooling"
    RELINKING = "relinking"  # logged out (401): a new pairing code or QR is being offered
    BANNED = "banned"
    RETIRED = "retired"


Count = Annotated[int, msgspec.Meta(ge=0)]


class ChipEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    version: ClassVar[int] = 1  # bumped when the payload shape changes; see upcasting.py
    event_id: str  # `<chip_id>:<command_id>:<n>`, also the Nats-Msg-Id
    chip_id: str
    command_id: str
    occurred_at: datetime


class Provisioned(ChipEvent, frozen=True, kw_only=True, tag="Provisioned"):
    phone_number: str | None = None
    ddd: int | None = None
    salvy_account_id: str | None = None


class ActivationStarted(ChipEvent, frozen=True, kw_only=True, tag="ActivationStarted"):
    host: str | None = None


class Activated(ChipEvent, frozen=True, kw_only=True, tag="Activated"):
    instance: str
    host: str
    daily_cap: int  # the warm-up ramp's first cap
    # The number the activation linked, bought by area code or given by Provision; None in
    # events stored before the activator sent it (a rebuild takes those from ACTIVATIONS).
    phone_number: str | None = None  # personal data: never logged unmasked
    salvy_account_id: str | None = None


class ActivationFailed(ChipEvent, frozen=True, kw_only=True, tag="ActivationFailed"):
    reason: str
    retryable: bool
    step: str | None = None


class ActivationRetried(ChipEvent, frozen=True, kw_only=True, tag="ActivationRetried"):
    """Asked for by an operator; the activator resumes an abandoned saga on seeing it."""


class TrafficObserved(ChipEvent, frozen=True, kw_only=True, tag="TrafficObserved"):
    version: ClassVar[int] = 2  # v1 called `replied` "replies" and had no `received`
    sent: Count = 0
    delivered: Count = 0
    read: Count = 0
    replied: Count = 0
    failed: Count = 0
    received: Count = 0
    health_score: float | None = None  # the health monitor's score (0..1) when it counted these


class WarmDayCompleted(ChipEvent, frozen=True, kw_only=True, tag="WarmDayCompleted"):
    day_number: int
    messages_sent: int
    messages_received: int
    delivered: int
    read: int
    replied: int
    failed: int
    daily_cap: int  # the cap that held during the day
    next_daily_cap: int  # the cap for the next day
    advanced: bool  # the day passed its gates and counted as a good day
    good_days: int  # good days so far, this one included
    reason: str  # why the gates passed or not, with the rates that decided it
    warmer_progress: float  # good_days / WARMER_MIN_DAYS, capped at 1


class Ready(ChipEvent, frozen=True, kw_only=True, tag="Ready"):
    good_days: int


class InService(ChipEvent, frozen=True, kw_only=True, tag="InService"):
    pass


class OutOfService(ChipEvent, frozen=True, kw_only=True, tag="OutOfService"):
    reason: str


class Cooled(ChipEvent, frozen=True, kw_only=True, tag="Cooled"):
    version: ClassVar[int] = 2  # v1 took `until` from the Cool as sent: it may lack a zone
    reason: str
    until: datetime | None  # None: rests until an operator resumes it
    previous_status: Status  # where `Resume` takes it back
    cool_streak: int = 1  # consecutive coolings: the rest escalates with it


class Resumed(ChipEvent, frozen=True, kw_only=True, tag="Resumed"):
    status: Status  # the state the chip returned to


class Banned(ChipEvent, frozen=True, kw_only=True, tag="Banned"):
    reason: str
    evidence: str
    previous_status: Status


class Reinstated(ChipEvent, frozen=True, kw_only=True, tag="Reinstated"):
    daily_cap: int  # the warm-up restarts at day 1 with the first cap


class Retired(ChipEvent, frozen=True, kw_only=True, tag="Retired"):
    reason: str
    previous_status: Status | None = None  # None in events stored before it was recorded


class ResourceReleased(ChipEvent, frozen=True, kw_only=True, tag="ResourceReleased"):
    """Something the chip held was given back: by the activator's retirement steps, or by
    the wind-down of an abandoned activation (the number is kept for a retry)."""

    resource: str  # the step: cancel_number, delete_instance or free_slot
    detail: str  # what was released, without personal data


class RelinkRequested(ChipEvent, frozen=True, kw_only=True, tag="RelinkRequested"):
    """The gateway logged the chip out (Baileys 401): it stops serving until linked again."""

    reason: str
    evidence: str
    previous_status: Status  # where `Relinked` takes it back


class RelinkStarted(ChipEvent, frozen=True, kw_only=True, tag="RelinkStarted"):
    """A try at linking again: the code to enter on the phone, or the QR to scan. Both are
    short-lived (minutes) and the read model drops them once the try ends; never logged."""

    attempt: int  # 1-based
    pairing_code: str | None = None  # Baileys, linked by number
    qr: str | None = None  # the QR's text, when no pairing code was given


class Relinked(ChipEvent, frozen=True, kw_only=True, tag="Relinked"):
    status: Status  # the state the chip returned to


class RelinkFailed(ChipEvent, frozen=True, kw_only=True, tag="RelinkFailed"):
    attempt: int
    reason: str


AnyChipEvent = (
    Provisioned | ActivationStarted | Activated | ActivationFailed | ActivationRetried
    | TrafficObserved
    | WarmDayCompleted | Ready | InService | OutOfService | Cooled | Resumed | Banned
    | Reinstated | Retired | ResourceReleased | RelinkRequested | RelinkStarted | Relinked
    | RelinkFailed
)

CHIP_EVENT_TYPES: tuple[type[ChipEvent], ...] = (
    Provisioned, ActivationStarted, Activated, ActivationFailed, ActivationRetried,
    TrafficObserved,
    WarmDayCompleted, Ready, InService, OutOfService, Cooled, Resumed, Banned, Reinstated,
    Retired, ResourceReleased, RelinkRequested, RelinkStarted, Relinked, RelinkFailed,
)
