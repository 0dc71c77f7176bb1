"""The demo's script: the fleet it provisions, what the recruiter may send, and the moments
the sandbox plays the real world's part.

Nothing here fabricates a chip's traffic: the recruiter only asks the balancer to write to
sandbox doctors (those who opted in, and once a chip is active the others too) and to answer
those who wrote, within a share of the daily caps of the chips that serve, in prospecting
hours; the doctors' receipts, replies and
opt-outs are their own. The moments (a temporary block, a ban) are what WhatsApp does to
real fleets, played by the sandbox's Evolution API so the system learns of them the real
way, from a `connection.update` webhook. Pure: the fleet is folded with the chip's own
model, time comes in as `now`.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from julia_chips.balancer.model.protection import (
    DEFAULT_PROTECTION,
    ProtectionPolicy,
    local_time,
    within_prospecting_hours,
)
from julia_chips.chip.model.lifecycle import ChipState, evolve
from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status

# Where the numbers are bought: São Paulo, Rio de Janeiro, Curitiba (the area codes the
# sandbox's Salvy has in stock).
AREA_CODES = (11, 21, 41)
SERVING = frozenset({Status.WARMING, Status.ACTIVE})  # chips the balancer sends through
TEMPORARY_BAN = 402  # Baileys' close code: a rest of a day (health/model/evidence.py)
BAN = 403  # Baileys' close code: banned


class DemoScript(msgspec.Struct, frozen=True, kw_only=True):
    chips: int = 30
    doctors: int = 2000
    provision_every: float = 1.0  # real seconds between two provisions: a fleet that grows
    prospecting_share: float = 0.8  # of the serving chips' caps; the rest is for replies
    opted_in_tenths: int = 7  # of every ten doctors, those who signed up to hear of shifts
    replies_per_doctor_day: int = 3  # answers to one doctor per local day, at most
    # After the first chip is in service (simulated time): a temporary block, then a ban.
    block_after: timedelta = timedelta(hours=12)
    ban_after: timedelta = timedelta(days=1)
    relink_after: timedelta = timedelta(hours=6)  # the blocked number's session comes back
    protection: ProtectionPolicy = DEFAULT_PROTECTION


DEMO_CHIPS = uuid.UUID("5d0c2a8e-7d1b-4f3a-9c3e-0de3011a0000")  # the namespace of their ids


def chip_id(number: int) -> str:
    """The `number`th demo chip's id: a UUID like every chip's, the same in every `run`."""
    return str(uuid.uuid5(DEMO_CHIPS, f"demo chip {number}"))


def fleet_plan(script: DemoScript) -> list[tuple[str, int]]:
    """Every demo chip with the area code its number is bought in."""
    return [(chip_id(n), AREA_CODES[(n - 1) % len(AREA_CODES)])
            for n in range(1, script.chips + 1)]


def demo_chip_ids(script: DemoScript) -> frozenset[str]:
    return _ids(script.chips)


@functools.cache
def _ids(chips: int) -> frozenset[str]:
    return frozenset(chip_id(n) for n in range(1, chips + 1))


def to_provision(script: DemoScript, existing: Mapping[str, ChipState]
                 ) -> list[tuple[str, int]]:
    """The demo chips not in the fleet yet: a restarted `run` provisions no second fleet."""
    return [(chip, ddd) for chip, ddd in fleet_plan(script) if chip not in existing]


class MomentKind(StrEnum):
    BLOCK = "block"  # the instance closes with 402: the health monitor rests the chip
    RELINK = "relink"  # the blocked session opens again: the monitor resumes it after the rest
    BAN = "ban"  # the instance closes with 403: a ban, and the consented doctors fail over


class Moment(msgspec.Struct, frozen=True, kw_only=True):
    kind: MomentKind
    chip_id: str
    instance: str


class DemoFleet(msgspec.Struct, frozen=True, kw_only=True):
    """The demo chips as their events tell it, and what the script has done to them."""

    chips: dict[str, ChipState] = {}
    first_in_service: datetime | None = None
    blocked: str | None = None  # the chip the script blocked
    blocked_at: datetime | None = None
    relinked: bool = False
    banned: str | None = None  # a banned chip: the script's ban, or one seen in the history


def follow(fleet: DemoFleet, event: ev.AnyChipEvent, script: DemoScript) -> DemoFleet:
    """The fleet after one chip event; another chip's (an operator's) is not the demo's."""
    if event.chip_id not in demo_chip_ids(script):
        return fleet
    state = evolve(fleet.chips.get(event.chip_id) or ChipState(chip_id=event.chip_id), event)
    changes: dict[str, object] = {"chips": {**fleet.chips, event.chip_id: state}}
    if isinstance(event, ev.InService) and fleet.first_in_service is None:
        changes["first_in_service"] = event.occurred_at
    if isinstance(event, ev.Banned) and fleet.banned is None:
        changes["banned"] = event.chip_id
    return msgspec.structs.replace(fleet, **changes)


def done(fleet: DemoFleet, moment: Moment, now: datetime) -> DemoFleet:
    """The fleet once the sandbox played `moment`."""
    match moment.kind:
        case MomentKind.BLOCK:
            return msgspec.structs.replace(fleet, blocked=moment.chip_id, blocked_at=now)
        case MomentKind.RELINK:
            return msgspec.structs.replace(fleet, relinked=True)
    return msgspec.structs.replace(fleet, banned=moment.chip_id)


def due_moments(fleet: DemoFleet, now: datetime, script: DemoScript,
                carrying: Mapping[str, int] | None = None) -> list[Moment]:
    """What the sandbox should do now: each moment once, on an active chip, the ban on
    another chip than the block, the one carrying the most consented conversations
    (`carrying`: as the recruiter last saw them placed), so there are doctors to fail over.
    """
    moments: list[Moment] = []
    start = fleet.first_in_service
    if start is None:
        return moments
    if fleet.blocked is None and now >= start + script.block_after:
        chip = _active(fleet, exclude=set())
        if chip is not None:
            moments.append(Moment(kind=MomentKind.BLOCK, chip_id=chip.chip_id,
                                  instance=chip.instance or ""))
    if (fleet.blocked is not None and not fleet.relinked and fleet.blocked_at is not None
            and now >= fleet.blocked_at + script.relink_after):
        blocked = fleet.chips.get(fleet.blocked)
        if blocked is not None and blocked.instance:
            moments.append(Moment(kind=MomentKind.RELINK, chip_id=blocked.chip_id,
                                  instance=blocked.instance))
    if fleet.banned is None and now >= start + script.ban_after:
        chip = _carrying_most(fleet, carrying or {})
        if chip is not None:
            moments.append(Moment(kind=MomentKind.BAN, chip_id=chip.chip_id,
                                  instance=chip.instance or ""))
    return moments


def _active(fleet: DemoFleet, exclude: set[str]) -> ChipState | None:
    active = [c for c in fleet.chips.values()
              if c.status is Status.ACTIVE and c.instance and c.chip_id not in exclude]
    return min(active, key=lambda c: c.chip_id) if active else None


def opted_in(doctor_index: int, script: DemoScript) -> bool:
    """Whether the doctor signed up for offers (a consented conversation, which warming
    chips may carry); the others are prospected, which only active chips do."""
    return doctor_index % 10 < script.opted_in_tenths


def prospects_strangers(fleet: DemoFleet) -> bool:
    """Doctors who did not opt in are written to only once a chip is active: a warming chip
    never carries their messages, and a request no chip may take would only wait."""
    return any(c.status is Status.ACTIVE for c in fleet.chips.values())


def daily_offers(fleet: DemoFleet, script: DemoScript) -> int:
    """Offers for one local day: `prospecting_share` of the serving chips' daily caps, and
    no more than the doctors' weekly prospecting cap allows on every day of the week (so
    the chips carry some traffic each day rather than all of it on Monday)."""
    capacity = sum(c.daily_cap for c in fleet.chips.values() if c.status in SERVING)
    weekly = script.doctors * script.protection.weekly_prospecting_cap / 7
    return math.floor(min(capacity * script.prospecting_share, weekly))


def _carrying_most(fleet: DemoFleet, carrying: Mapping[str, int]) -> ChipState | None:
    active = [c for c in fleet.chips.values()
              if c.status is Status.ACTIVE and c.instance and c.chip_id != fleet.blocked
              and carrying.get(c.chip_id, 0) > 0]
    return min(active, key=lambda c: (-carrying[c.chip_id], c.chip_id)) if active else None


def prospecting_budget(fleet: DemoFleet, now: datetime, script: DemoScript) -> int:
    """Offers to opted-in doctors the recruiter may have asked for by `now` on this local
    day: `daily_offers`, spread evenly over the prospecting hours (none in quiet hours or on
    Sundays)."""
    if not within_prospecting_hours(now, script.protection):
        return 0
    local = local_time(now)
    opens = local.replace(hour=script.protection.quiet_end.hour,
                          minute=script.protection.quiet_end.minute, second=0, microsecond=0)
    closes = local.replace(hour=script.protection.quiet_start.hour,
                           minute=script.protection.quiet_start.minute, second=0,
                           microsecond=0)
    elapsed = min(1.0, (local - opens) / (closes - opens))
    return math.floor(daily_offers(fleet, script) * elapsed)


_OFFERS = (
    "Olá, {name}! Temos um plantão de 12h no Hospital Santa Clara neste sábado. "
    "Tem interesse?",
    "Oi, {name}, tudo bem? Surgiu uma vaga de plantão noturno na UPA Centro, "
    "R$ 1.800. Posso reservar para você?",
    "{name}, bom dia! Há plantões de pronto-socorro disponíveis na próxima semana. "
    "Quer que eu envie as datas?",
)
_ANSWERS = (
    "Ótimo! Te envio os detalhes do plantão em seguida.",
    "Perfeito, vou confirmar com a coordenação e te retorno.",
    "Obrigada pela resposta! Qualquer dúvida, é só me chamar.",
)


def offer_text(n: int, name: str) -> str:
    """The `n`th offer of the demo recruiter, to a doctor called `name`."""
    return _OFFERS[n % len(_OFFERS)].format(name=name)


def answer_text(n: int) -> str:
    return _ANSWERS[n % len(_ANSWERS)]
