"""The warm-up ramp: the cap ladder, the day gates and the restriction gate."""

from __future__ import annotations

from julia_chips.warmer.model.policy import (
    DayFigures,
    WarmupPolicy,
    judge_day,
    ramp,
    warmer_progress,
)

POLICY = WarmupPolicy()
GOOD = DayFigures(sent=20, delivered=19, read=15, replied=4, failed=0, received=5)


def test_default_ramp_starts_at_20_and_grows_about_one_and_a_half_to_the_full_cap() -> None:
    assert ramp(POLICY) == (20, 30, 45, 68, 101, 152, 228, 250)


def test_a_configured_schedule_is_the_ladder() -> None:
    policy = WarmupPolicy(first_cap=10, schedule=(10, 25, 50, 100))
    assert judge_day(GOOD, 25, policy).next_cap == 50
    assert judge_day(GOOD, 100, policy).next_cap == 100  # the top holds
    bad = DayFigures(sent=20, delivered=10, replied=0)
    assert judge_day(bad, 50, policy).next_cap == 25


def test_good_day_climbs_one_step() -> None:
    verdict = judge_day(GOOD, 20, POLICY)
    assert verdict.good and verdict.next_cap == 30 and verdict.reason.startswith("passed")


def test_bad_day_steps_back_and_never_below_the_first_cap() -> None:
    bad = DayFigures(sent=40, delivered=30, replied=0, failed=8)
    assert judge_day(bad, 45, POLICY).next_cap == 30
    verdict = judge_day(bad, 20, POLICY)
    assert not verdict.good and verdict.next_cap == 20
    assert "delivery below" in verdict.reason and "failures above" in verdict.reason


def test_quiet_day_holds_the_cap() -> None:
    verdict = judge_day(DayFigures(sent=2, delivered=2, replied=1), 45, POLICY)
    assert not verdict.good and verdict.next_cap == 45 and "too little traffic" in verdict.reason


def test_a_restriction_signal_fails_an_otherwise_good_day() -> None:
    restricted = DayFigures(sent=20, delivered=19, replied=4, restrictions=1)
    verdict = judge_day(restricted, 45, POLICY)
    assert not verdict.good and verdict.next_cap == 30 and "restriction signal" in verdict.reason


def test_progress_is_a_share_of_min_days_capped_at_one() -> None:
    assert warmer_progress(0, POLICY) == 0.0
    assert warmer_progress(3, WarmupPolicy(min_days=6)) == 0.5
    assert warmer_progress(9, POLICY) == 1.0
