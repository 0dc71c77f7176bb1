"""When a warm day closes (local midnight in São Paulo) and the id its close command gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from julia_chips.contract import chip as ev
from julia_chips.contract.chip import Status
from julia_chips.warmer.model.schedule import close_command, closes_at, follow, is_due

# 2026-03-02 10:00 in São Paulo (UTC-3, no daylight saving since 2019) = 13:00 UTC.
OPENED = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


def stamp(cls: type[ev.ChipEvent], at: datetime = OPENED, **fields: object) -> ev.AnyChipEvent:
    event = cls(event_id="e", chip_id="chip-1", command_id="c", occurred_at=at, **fields)
    return event  # type: ignore[return-value]


def activated() -> ev.AnyChipEvent:
    return stamp(ev.Activated, instance="i", host="h", daily_cap=20)


def test_day_one_opens_at_activation_and_closes_at_the_next_local_midnight() -> None:
    day = follow(None, activated())
    assert day is not None and day.day_number == 1
    assert closes_at(day) == MIDNIGHT
    assert not is_due(day, MIDNIGHT - timedelta(seconds=1))
    assert is_due(day, MIDNIGHT)


def test_utc_midnight_is_not_local_midnight() -> None:
    day = follow(None, activated())
    assert day is not None and not is_due(day, datetime(2026, 3, 3, 0, 0, tzinfo=UTC))


def completed(day_number: int, at: datetime) -> ev.AnyChipEvent:
    return stamp(ev.WarmDayCompleted, at, day_number=day_number, messages_sent=0,
                 messages_received=0, delivered=0, read=0, replied=0, failed=0, daily_cap=20,
                 next_daily_cap=20, advanced=False, good_days=0, reason="held",
                 warmer_progress=0.0)


def test_a_completed_day_opens_the_next_one() -> None:
    day = follow(follow(None, activated()), completed(1, MIDNIGHT + timedelta(seconds=2)))
    assert day is not None and day.day_number == 2
    assert closes_at(day) == MIDNIGHT + timedelta(days=1)
    assert close_command(day).command_id == "close:chip-1:2"
    assert close_command(day).day_number == 2


def test_a_late_close_does_not_skip_a_day() -> None:
    day = follow(None, activated())
    assert day is not None and is_due(day, MIDNIGHT + timedelta(days=3))
    assert close_command(day).day_number == 1


def test_cooling_pauses_the_day_and_resuming_to_warming_reopens_it() -> None:
    day = follow(None, activated())
    cooled = follow(day, stamp(ev.Cooled, reason="r", until=None, previous_status=Status.WARMING))
    assert cooled is not None and not is_due(cooled, MIDNIGHT)
    resumed = follow(cooled, stamp(ev.Resumed, status=Status.WARMING))
    assert resumed is not None and is_due(resumed, MIDNIGHT)


def test_ready_and_banned_chips_have_no_day_to_close() -> None:
    day = follow(None, activated())
    assert not is_due(follow(day, stamp(ev.Ready, good_days=7)), MIDNIGHT)  # type: ignore[arg-type]
    banned = follow(day, stamp(ev.Banned, reason="r", evidence="e",
                               previous_status=Status.WARMING))
    assert banned is not None and not is_due(banned, MIDNIGHT)


def test_a_reinstated_chip_gets_new_close_ids_for_its_second_warm_up() -> None:
    day = follow(None, activated())
    banned = follow(day, stamp(ev.Banned, reason="r", evidence="e",
                               previous_status=Status.WARMING))
    again = follow(banned, stamp(ev.Reinstated, daily_cap=20))
    assert again is not None and again.day_number == 1
    assert close_command(again).command_id == "close:chip-1:1:w2"
    assert follow(None, stamp(ev.TrafficObserved)) is None
