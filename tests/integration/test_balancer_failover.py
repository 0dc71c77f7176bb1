"""Failover through real NATS and real chip actors: cool, ban, and a crash mid-send."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from datetime import timedelta

import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.runner import BalancerRunner
from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.clock import FixedClock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from tests.fakes import FakeSender
from tests.integration.balancer_harness import (
    SETTINGS,
    ledger,
    route_events,
    running_balancer,
    seed_chip,
    wait_until,
)
from tests.integration.workers import running_worker
from tests.unit.balancer_builders import NOW

PHONE = "+5511987654321"
# Chip ids are UUIDs (the partitions refuse anything else); these read as names.
HOT, SPARE, A = (f"00000000-0000-4000-8000-{n:012x}" for n in (0x407, 0x5ba, 0xa))
OTHERS = [f"00000000-0000-4000-8000-{0xc00 + n:012x}" for n in range(5)]
READY = [f"00000000-0000-4000-8000-{0xe00 + n:012x}" for n in range(4)]


async def load_hot_chip(nc: NATS, js: JetStreamContext,
                        doctors: list[tuple[str, str, bool]]) -> None:
    """`hot` alone in service gets every conversation; then the others join the pool."""
    await seed_chip(js, HOT, Status.ACTIVE, 1000)
    client = RouteClient(nc)
    replies = await asyncio.gather(*(client.send(d, PHONE, f"oi {d}", kind, consented)
                                     for d, kind, consented in doctors))
    assert {r.chip_id for r in replies} == {HOT}, replies[:3]
    for chip_id in OTHERS:
        await seed_chip(js, chip_id, Status.ACTIVE, 500)
    await seed_chip(js, SPARE, Status.READY, 500)


async def status_of(js: JetStreamContext, chip_id: str) -> Status | None:
    from julia_chips.chip.model.lifecycle import fold

    stored = await JetStreamChipEventLog(js).load(chip_id)
    return fold(chip_id, [s.event for s in stored]).status


async def test_cooling_a_chip_with_200_conversations(nc: NATS, js: JetStreamContext) -> None:
    doctors = [(f"d{n:03}", "reply", n % 2 == 0) for n in range(200)]
    async with running_worker(nc), running_balancer(nc) as runner:
        await load_hot_chip(nc, js, doctors)
        reply = await ChipClient(nc).send(HOT, cmd.Cool(command_id="cool", reason="rate limit"))
        assert reply.ok, reply

        async def promoted() -> bool:
            return bool(runner.failovers) and await status_of(js, SPARE) is Status.ACTIVE
        await wait_until(promoted)
    moved = [e for e in await route_events(js) if isinstance(e, rt.ConversationReassigned)]
    assert {e.doctor_id for e in moved} == {d for d, _, _ in doctors}
    per_chip = Counter(e.chip_id for e in moved)
    assert set(per_chip) <= set(OTHERS) | {SPARE}
    # Stated bound: equal room, so no chip takes more than ceil(200 / 5) = 40.
    assert max(per_chip.values()) <= math.ceil(200 / len(OTHERS))
    [timing] = runner.failovers
    assert (timing.chip_id, timing.reassigned) == (HOT, 200) and timing.seconds < 2.0


async def test_ban_moves_consented_and_quarantines_prospected(
        nc: NATS, js: JetStreamContext) -> None:
    consented = [(f"c{n:03}", "reply", True) for n in range(100)]
    prospected = [(f"p{n:03}", "prospecting", False) for n in range(100)]
    clock = FixedClock(NOW)
    async with running_worker(nc), running_balancer(nc, clock=clock) as runner:
        await load_hot_chip(nc, js, consented + prospected)
        reply = await ChipClient(nc).send(HOT, cmd.ReportBan(command_id="ban", reason="banned",
                                                               evidence="connection 403"))
        assert reply.ok, reply

        async def failed_over() -> bool:
            return bool(runner.failovers)
        await wait_until(failed_over)
        client = RouteClient(nc)
        refused = await client.send("p007", PHONE, "nova vaga", "prospecting")
        assert not refused.ok and refused.reason == "quarantined"
        clock.set(NOW + timedelta(days=31))  # a Saturday, 14:00 in São Paulo
        later = await client.send("p007", PHONE, "nova vaga", "prospecting")
        assert later.ok and later.chip_id != HOT
    events = await route_events(js)
    moved = {e.doctor_id for e in events if isinstance(e, rt.ConversationReassigned)}
    held = {e.doctor_id for e in events if isinstance(e, rt.DoctorQuarantined)}
    assert moved == {d for d, _, _ in consented}
    assert held == {d for d, _, _ in prospected}
    assert runner.failovers[0].quarantined == 100


async def test_crash_between_attempt_and_gateway_answer_is_unknown_never_resent(
        nc: NATS, js: JetStreamContext) -> None:
    await seed_chip(js, A, Status.ACTIVE, 100)
    first = FakeSender()
    first.hang_on.add("stuck")
    runner = BalancerRunner(nc, FixedClock(NOW), SETTINGS, first, "first")
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.leading.wait(), 10)
    client = RouteClient(nc)
    answer = asyncio.create_task(client.send("d1", PHONE, "stuck", "reply", command_id="r1",
                                             timeout=30))

    async def attempted() -> bool:
        return any(isinstance(e, msg.SendAttempted) for e in await ledger(js))
    await wait_until(attempted)
    task.cancel()  # the process dies mid-call: no outcome written, request not acked
    with contextlib.suppress(asyncio.CancelledError):
        await task
    second = FakeSender()
    async with running_balancer(nc, sender=second, holder="second"):
        reply = await answer
    assert (reply.ok, reply.status) == (False, "unknown")
    assert second.sent == [] and len(first.sent) == 1
    kinds = [type(e) for e in await ledger(js)]
    assert kinds == [msg.SendAttempted, msg.SendUnknown]


@pytest.mark.parametrize("status", ["ready"])
async def test_pool_never_exceeds_max_active(nc: NATS, js: JetStreamContext, status: str) -> None:
    for n in range(4):
        await seed_chip(js, READY[n], Status.READY, 50)
    settings = SETTINGS.__class__(**{**{f: getattr(SETTINGS, f) for f in
                                        SETTINGS.__struct_fields__}, "max_active": 2})
    async with running_worker(nc), running_balancer(nc, settings=settings):
        async def two_active() -> bool:
            states = [await status_of(js, READY[n]) for n in range(4)]
            return states.count(Status.ACTIVE) == 2
        await wait_until(two_active)
        await asyncio.sleep(0.5)
        states = [await status_of(js, READY[n]) for n in range(4)]
        assert states.count(Status.ACTIVE) == 2 and status in {s.value for s in states if s}
