"""Fourteen warm days in accelerated time: real NATS, a real worker, the scheduler and the
health monitor on one stepped clock, fed sandbox-like receipts and replies on gw.obs.

The traffic is what doctors did with the messages the chip was allowed to send (never more
than its daily cap); nothing here makes up engagement to fool anyone.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.partition import PartitionSettings
from julia_chips.clock import FixedClock
from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status
from julia_chips.contract.observations import HealthSignal, InboundMessage, MessageStatus
from julia_chips.ingest.observation_log import publish_observation
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.warmer.model.policy import WarmupPolicy
from tests.conftest import new_chip_id
from tests.integration.health_rig import monitoring, until
from tests.integration.test_warmer_scheduler import scheduling
from tests.integration.warm_fleet import FIRST_MIDNIGHT, MORNING, events_of, warming_chips
from tests.integration.workers import running_worker

SETTINGS = PartitionSettings(ack_wait=3.0, max_deliver=3, snapshot_every=5, idle_passivate=60,
                             policy=WarmupPolicy(min_days=7, max_days=14))


def doctors_day(instance: str, day: int, cap: int, delivery: float, replies: float,
                clock: FixedClock) -> list[HealthSignal]:
    """`cap` messages sent; a share delivered, read and answered, the rest failed."""
    at = clock.now()
    delivered, replied = round(cap * delivery), round(cap * replies)
    signals: list[HealthSignal] = []
    for n in range(cap):
        phone = f"+55119{day:02d}{n:05d}"
        sent = [MessageStatus(instance=instance, message_id=f"d{day}m{n}", remote_phone=phone,
                              status=s, observed_at=at)
                for s in ("SERVER_ACK", "DELIVERY_ACK" if n < delivered else "ERROR")]
        signals += sent
        if n < replied:
            signals.append(MessageStatus(instance=instance, message_id=f"d{day}m{n}",
                                         remote_phone=phone, status="READ", observed_at=at))
            signals.append(InboundMessage(instance=instance, message_id=f"d{day}in{n}",
                                          from_phone=phone, text="tenho interesse", sent_at=at))
    return signals


async def cap_of(js: JetStreamContext, chip: str) -> int:
    cap = 0
    for e in await events_of(js, chip):
        if isinstance(e, ev.Activated):
            cap = e.daily_cap
        elif isinstance(e, ev.WarmDayCompleted):
            cap = e.next_daily_cap
    return cap


async def sent_so_far(js: JetStreamContext, chip: str) -> int:
    return sum(e.sent for e in await events_of(js, chip) if isinstance(e, ev.TrafficObserved))


async def test_fourteen_warm_days(nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)  # stores signals as the observation deriver does
    good, poor = new_chip_id(), new_chip_id()
    started = time.monotonic()
    expected_sent = {good: 0, poor: 0}
    async with running_worker(nc, clock, SETTINGS), monitoring(nc, clock), \
            scheduling(nc, clock):
        await warming_chips(ChipClient(nc), [good, poor])
        for day in range(1, 15):
            clock.set(FIRST_MIDNIGHT + timedelta(days=day - 1, hours=-8))  # 16:00 local
            plan = {good: (0.85, 0.2) if day == 4 else (0.97, 0.2),  # day 4: bad delivery
                    poor: (0.97, 0.0)}  # nobody ever answers the poor chip
            warming = [c for c in plan if (await events_of(js, c))[-1].__class__ not in
                       (ev.Ready, ev.Cooled)]
            for chip in warming:
                cap = await cap_of(js, chip)
                expected_sent[chip] += cap
                signals = doctors_day(f"inst-{chip}", day, cap, *plan[chip], clock)
                await asyncio.gather(*(publish_observation(gateway, s) for s in signals))
            for chip in warming:
                await until(lambda c=chip: _sent_is(js, c, expected_sent[c]))
            clock.set(FIRST_MIDNIGHT + timedelta(days=day - 1, seconds=1))
            for chip in warming:
                await until(lambda c=chip, d=day: _closed(js, c, d))
    elapsed = time.monotonic() - started

    days = [e for e in await events_of(js, good) if isinstance(e, ev.WarmDayCompleted)]
    assert [d.advanced for d in days] == [True, True, True, False, True, True, True, True]
    assert [d.daily_cap for d in days] == [20, 30, 45, 68, 45, 68, 101, 152]
    assert [d.next_daily_cap for d in days][-1] == 228
    assert "delivery below" in days[3].reason and days[3].messages_sent == 68
    assert days[-1].good_days == 7 and days[-1].warmer_progress == 1.0
    last = (await events_of(js, good))[-1]
    assert isinstance(last, ev.Ready) and last.good_days == 7

    poor_days = [e for e in await events_of(js, poor) if isinstance(e, ev.WarmDayCompleted)]
    assert len(poor_days) == 14 and not any(d.advanced for d in poor_days)
    assert all(d.daily_cap == 20 and "replies below" in d.reason for d in poor_days)
    review = (await events_of(js, poor))[-1]
    assert isinstance(review, ev.Cooled) and review.until is None
    assert review.previous_status is Status.WARMING
    assert "warm-up not passed after 14 days (0/7 good days)" in review.reason
    assert elapsed / 14 < 1.0, f"{elapsed / 14:.2f} s per warm day"


async def _sent_is(js: JetStreamContext, chip: str, n: int) -> bool:
    return await sent_so_far(js, chip) == n


async def _closed(js: JetStreamContext, chip: str, day: int) -> bool:
    return any(isinstance(e, ev.WarmDayCompleted) and e.day_number == day
               for e in await events_of(js, chip))
