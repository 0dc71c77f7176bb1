"""The demo's script, pure: the fleet it provisions (once), how many offers the recruiter
may ask for, and when the sandbox blocks, relinks and bans (each once, on active chips)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from julia_chips.balancer.model.protection import SAO_PAULO, local_time
from julia_chips.chip.model.lifecycle import ChipState
from julia_chips.clock import SystemClock
from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status
from julia_chips.demo.model import script as sc
from julia_chips.demo.timeline import first_morning
from julia_chips.sandbox.salvy_api import SalvyWorld
from julia_chips.sandbox.webhook_poster import WebhookPoster

SCRIPT = sc.DemoScript(chips=6, doctors=200)


def _monday(hour: int, minute: int = 0) -> datetime:
    """A Monday at `hour` in São Paulo, some weeks after the wall clock's today."""
    return first_morning(SystemClock().now()).astimezone(SAO_PAULO).replace(
        hour=hour, minute=minute).astimezone(UTC)


def _chip(n: int, status: Status, daily_cap: int = 20) -> ChipState:
    return ChipState(chip_id=sc.chip_id(n), status=status, instance=f"chip-{n}",
                     daily_cap=daily_cap)


def _fleet(*chips: ChipState, **fields: object) -> sc.DemoFleet:
    return msgspec.structs.replace(sc.DemoFleet(chips={c.chip_id: c for c in chips}), **fields)


def test_the_fleet_has_fixed_uuid_ids_and_area_codes_the_sandbox_sells() -> None:
    plan = sc.fleet_plan(SCRIPT)
    assert [chip for chip, _ in plan] == [sc.chip_id(n) for n in range(1, 7)]
    assert all(uuid.UUID(chip) for chip, _ in plan) and len(set(plan)) == 6
    assert sc.fleet_plan(SCRIPT) == plan  # the same in every run
    in_stock = SalvyWorld(token="t", webhook_secret="whsec_AAAA", poster=WebhookPoster(),
                          clock=SystemClock(), seed=1).stock
    assert {ddd for _, ddd in plan} == {ddd for ddd, ok in in_stock.items() if ok}


def test_a_restarted_run_provisions_only_the_chips_missing() -> None:
    existing = {sc.chip_id(n): _chip(n, Status.WARMING) for n in (1, 2, 5)}
    assert [c for c, _ in sc.to_provision(SCRIPT, existing)] == [
        sc.chip_id(n) for n in (3, 4, 6)]
    everything = {chip: _chip(0, Status.WARMING) for chip, _ in sc.fleet_plan(SCRIPT)}
    assert sc.to_provision(SCRIPT, everything) == []


def test_the_fleet_follows_demo_chips_only_and_notes_service_and_bans() -> None:
    at = _monday(10)
    common = {"command_id": "c", "occurred_at": at}
    fleet = sc.DemoFleet()
    fleet = sc.follow(fleet, ev.Provisioned(event_id="x:0", chip_id=str(uuid.uuid4()),
                                            **common), SCRIPT)
    assert fleet.chips == {}  # an operator's chip is not the demo's
    demo = sc.chip_id(1)
    for n, event in enumerate([ev.Provisioned(event_id="a", chip_id=demo, **common),
                               ev.InService(event_id="b", chip_id=demo, **common)]):
        fleet = sc.follow(fleet, event, SCRIPT)
        assert fleet.chips[demo].version == n + 1
    assert fleet.first_in_service == at and fleet.banned is None
    later = {"command_id": "c", "occurred_at": at + timedelta(hours=1)}
    fleet = sc.follow(fleet, ev.InService(event_id="c", chip_id=demo, **later), SCRIPT)
    assert fleet.first_in_service == at
    fleet = sc.follow(fleet, ev.Banned(event_id="d", chip_id=demo, reason="r", evidence="e",
                                       previous_status=Status.ACTIVE, **later), SCRIPT)
    assert fleet.banned == demo and fleet.chips[demo].status is Status.BANNED


def test_the_moments_come_once_each_on_active_chips_after_the_first_goes_into_service() -> None:
    start = _monday(0)
    fleet = _fleet(_chip(1, Status.ACTIVE), _chip(2, Status.WARMING), _chip(3, Status.ACTIVE))
    assert sc.due_moments(fleet, start + timedelta(days=3), SCRIPT) == []  # none in service
    fleet = msgspec.structs.replace(fleet, first_in_service=start)
    assert sc.due_moments(fleet, start + timedelta(hours=11), SCRIPT) == []
    block_at = start + SCRIPT.block_after
    first, second = sorted([sc.chip_id(1), sc.chip_id(3)])  # the active chips, in id order
    [block] = sc.due_moments(fleet, block_at, SCRIPT)
    assert (block.kind, block.chip_id) == (sc.MomentKind.BLOCK, first)
    assert block.instance == fleet.chips[first].instance
    fleet = sc.done(fleet, block, block_at)
    assert sc.due_moments(fleet, block_at + timedelta(hours=1), SCRIPT) == []
    [relink] = sc.due_moments(fleet, block_at + SCRIPT.relink_after, SCRIPT)
    assert relink.kind is sc.MomentKind.RELINK and relink.chip_id == first
    fleet = sc.done(fleet, relink, block_at + SCRIPT.relink_after)
    ban_at = start + SCRIPT.ban_after
    assert sc.due_moments(fleet, ban_at, SCRIPT) == []  # nobody's conversations to move yet
    carrying = {first: 9, second: 2, sc.chip_id(2): 20}
    [ban] = sc.due_moments(fleet, ban_at, SCRIPT, carrying)
    # not the blocked chip, though it is active again, nor a warming one
    assert (ban.kind, ban.chip_id) == (sc.MomentKind.BAN, second)
    fleet = sc.done(fleet, ban, ban_at)
    assert sc.due_moments(fleet, start + timedelta(days=9), SCRIPT, carrying) == []


def test_no_ban_while_no_other_chip_is_active_and_none_after_a_ban_in_the_history() -> None:
    start = _monday(0)
    lonely = _fleet(_chip(1, Status.ACTIVE), _chip(2, Status.READY), first_in_service=start,
                    blocked=sc.chip_id(1), blocked_at=start, relinked=True)
    carrying = {sc.chip_id(1): 5, sc.chip_id(2): 5}
    assert sc.due_moments(lonely, start + timedelta(days=2), SCRIPT, carrying) == []
    seen = msgspec.structs.replace(lonely, blocked=None, banned=sc.chip_id(2))
    assert [m.kind for m in sc.due_moments(seen, start + timedelta(days=2), SCRIPT,
                                           carrying)] == [sc.MomentKind.BLOCK]


def test_offers_spread_over_prospecting_hours_within_caps_and_the_weekly_cap() -> None:
    fleet = _fleet(_chip(1, Status.WARMING, 20), _chip(2, Status.ACTIVE, 45),
                   _chip(3, Status.READY, 250), _chip(4, Status.COOLING, 250))
    daily = sc.daily_offers(fleet, SCRIPT)
    assert daily == int((20 + 45) * SCRIPT.prospecting_share)  # ready/cooling chips send nothing
    assert sc.prospecting_budget(fleet, _monday(7, 59), SCRIPT) == 0  # quiet hours
    assert sc.prospecting_budget(fleet, _monday(8), SCRIPT) == 0
    assert sc.prospecting_budget(fleet, _monday(14), SCRIPT) == daily // 2
    assert sc.prospecting_budget(fleet, _monday(19, 59), SCRIPT) in (daily - 1, daily)
    assert sc.prospecting_budget(fleet, _monday(20), SCRIPT) == 0
    assert sc.prospecting_budget(fleet, _monday(14) - timedelta(days=1), SCRIPT) == 0  # Sunday
    big = _fleet(*(_chip(n, Status.ACTIVE, 250) for n in range(1, 7)))
    # 200 doctors, 2 offers a week each: no more than 57 a day, every day of the week
    assert sc.daily_offers(big, SCRIPT) == 200 * 2 // 7


def test_the_demo_starts_on_the_next_monday_morning_in_sao_paulo() -> None:
    monday = first_morning(SystemClock().now())
    local = local_time(monday)
    assert (local.weekday(), local.hour, local.minute) == (0, 7, 50)
    assert monday >= SystemClock().now() - timedelta(seconds=1)
    assert first_morning(monday) == monday
    assert first_morning(monday + timedelta(minutes=1)) == monday + timedelta(days=7)
    assert first_morning(monday - timedelta(days=6)) == monday


def test_the_texts_vary_and_name_the_doctor() -> None:
    offers = {sc.offer_text(n, "Dr(a). Ana") for n in range(6)}
    assert len(offers) == 3 and all("Dr(a). Ana" in text for text in offers)
    assert len({sc.answer_text(n) for n in range(6)}) == 3


def test_the_ban_picks_the_active_chip_carrying_most_consented_conversations() -> None:
    start = _monday(0)
    fleet = _fleet(*(_chip(n, Status.ACTIVE) for n in (1, 2, 3)), first_in_service=start,
                   blocked=sc.chip_id(1), blocked_at=start, relinked=True)
    carrying = {sc.chip_id(1): 50, sc.chip_id(2): 3, sc.chip_id(3): 7}
    [ban] = sc.due_moments(fleet, start + SCRIPT.ban_after, SCRIPT, carrying)
    assert ban.chip_id == sc.chip_id(3)


def test_doctors_who_did_not_opt_in_are_prospected_once_a_chip_is_active() -> None:
    assert [sc.opted_in(n, SCRIPT) for n in range(10)] == [True] * 7 + [False] * 3
    assert not sc.prospects_strangers(_fleet(_chip(1, Status.WARMING), _chip(2, Status.READY)))
    assert sc.prospects_strangers(_fleet(_chip(1, Status.WARMING), _chip(2, Status.ACTIVE)))
