"""The fleet brake: engages at the threshold within the window, releases by cool-off or operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from julia_chips.contract.fleet import FleetBrakeEngaged, FleetBrakeReleased
from julia_chips.health.model.brake import (
    BrakePolicy,
    BrakeState,
    ban_seen,
    decide,
    evolve,
    release,
)

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
POLICY = BrakePolicy(threshold=3, window=timedelta(hours=1), cool_off=timedelta(hours=6))


def bans(state: BrakeState, *minutes_ago: float) -> BrakeState:
    for n, m in enumerate(minutes_ago):
        state = ban_seen(state, f"chip-{n}", NOW - timedelta(minutes=m), POLICY)
    return state


def test_below_the_threshold_nothing_happens() -> None:
    assert decide(bans(BrakeState(), 10, 5), NOW, POLICY) == []


def test_bans_outside_the_window_do_not_count() -> None:
    assert decide(bans(BrakeState(), 120, 90, 5), NOW, POLICY) == []


def test_the_threshold_within_the_window_engages_until_the_cool_off() -> None:
    [engaged] = decide(bans(BrakeState(), 50, 20, 1), NOW, POLICY)
    assert isinstance(engaged, FleetBrakeEngaged)
    assert engaged.bans_in_window == 3 and engaged.window_seconds == 3600
    assert engaged.until == NOW + timedelta(hours=6)
    assert engaged.event_id == "fleet-brake:1:engaged"
    assert "prospecting stops" in engaged.reason


def test_the_same_ban_seen_twice_counts_once() -> None:
    state = ban_seen(BrakeState(), "chip-1", NOW, POLICY)
    state = ban_seen(state, "chip-1", NOW, POLICY)
    state = ban_seen(state, "chip-2", NOW, POLICY)
    assert decide(state, NOW, POLICY) == []


def engaged_state() -> BrakeState:
    state = bans(BrakeState(), 50, 20, 1)
    [event] = decide(state, NOW, POLICY)
    return evolve(state, event)


def test_engaged_brake_holds_then_releases_itself_when_the_cool_off_passes() -> None:
    state = engaged_state()
    assert state.engaged and decide(state, NOW + timedelta(hours=5), POLICY) == []
    [released] = decide(state, NOW + timedelta(hours=6), POLICY)
    assert isinstance(released, FleetBrakeReleased) and released.reason == "cool-off passed"
    assert not evolve(state, released).engaged


def test_operator_releases_early_and_replayed_bans_do_not_re_engage() -> None:
    state = engaged_state()
    [released] = release(state, NOW + timedelta(minutes=10))
    assert released.reason == "operator"
    state = evolve(state, released)
    state = bans(state, 50, 20, 1)  # the same bans again, e.g. a monitor restart replays them
    assert decide(state, NOW + timedelta(minutes=11), POLICY) == []
    assert release(state, NOW) == []  # nothing to release


def test_new_bans_after_a_release_can_engage_again() -> None:
    state = evolve(engaged_state(), release(engaged_state(), NOW)[0])
    for n in range(3):
        state = ban_seen(state, f"new-{n}", NOW + timedelta(minutes=n + 1), POLICY)
    [again] = decide(state, NOW + timedelta(minutes=5), POLICY)
    assert isinstance(again, FleetBrakeEngaged) and again.event_id == "fleet-brake:3:engaged"
