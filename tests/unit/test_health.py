"""The health fold: window counters, replies, score, and the Cool/Resume/ReportBan decisions."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.health.model.monitoring import (
    HealthPolicy,
    decide,
    escalating_rest,
    score,
    take_traffic,
)
from tests.unit.health_builders import (
    NOW,
    apply,
    closed,
    conversation,
    fold,
    healthy_chip,
    receipt,
    reply,
)


def test_receipts_and_replies_count_once_per_level() -> None:
    health = fold(healthy_chip(), *conversation(1, replied=True), *conversation(2))
    window = score(health, NOW + timedelta(minutes=2)).window
    assert (window.sent, window.delivered, window.read, window.replied, window.received) == (
        2, 2, 1, 1, 1)


def test_a_message_from_someone_we_never_wrote_to_is_received_not_a_reply() -> None:
    health = fold(healthy_chip(), reply(7))
    window = score(health, NOW).window
    assert (window.received, window.replied) == (1, 0)


def test_the_window_forgets_signals_older_than_an_hour() -> None:
    health = fold(healthy_chip(), *conversation(1, delivered=False))
    assert score(health, NOW + timedelta(minutes=30)).window.failed == 1
    assert score(health, NOW + timedelta(hours=2)).window.failed == 0


def test_a_healthy_chip_gets_no_command() -> None:
    signals = [s for n in range(40) for s in conversation(n, replied=n % 4 == 0)]
    health = fold(healthy_chip(), *signals)
    assert decide(health, NOW) == []
    assert score(health, NOW).score > 0.9


def test_poor_delivery_over_enough_sends_cools_with_the_figures() -> None:
    signals = [s for n in range(30) for s in conversation(n, delivered=n % 2 == 0)]
    [cool] = decide(fold(healthy_chip(), *signals), NOW)
    assert isinstance(cool, cmd.Cool) and cool.until is None  # the chip escalates the rest
    assert cool.reason.startswith("health degraded") and "delivery=0.50" in cool.reason
    assert cool.command_id == "cool:chip-1:3"


def test_too_few_sends_prove_nothing() -> None:
    signals = [s for n in range(5) for s in conversation(n, delivered=False)]
    assert decide(fold(healthy_chip(), *signals), NOW) == []


def test_a_reconnect_storm_cools_but_a_single_transient_drop_does_nothing() -> None:
    one = fold(healthy_chip(), closed(None, "connecting"), closed(None, "open"))
    assert decide(one, NOW) == []
    storm = fold(healthy_chip(), *[c for _ in range(10) for c in (
        closed(440), closed(None, "open"))])
    [cool] = decide(storm, NOW)
    assert isinstance(cool, cmd.Cool) and "reconnect storm" in cool.reason


def test_deciding_twice_before_the_chip_answers_repeats_the_same_command_id() -> None:
    health = fold(healthy_chip(), closed(401))
    assert decide(health, NOW) == decide(health, NOW + timedelta(seconds=5))


def cooled(health_status: Status = Status.WARMING, until_hours: float = 1):  # type: ignore[no-untyped-def]
    health = fold(healthy_chip(health_status), closed(401))
    return apply(health, ev.Cooled(
        event_id="x", chip_id="chip-1", command_id="cool:chip-1:3", occurred_at=NOW,
        reason="r", until=NOW + timedelta(hours=until_hours), previous_status=health_status))


def test_resume_only_when_the_rest_is_over_and_the_connection_is_open() -> None:
    resting = cooled()
    assert resting.finding is None and resting.chip.status is Status.COOLING
    assert decide(resting, NOW + timedelta(minutes=30)) == []
    assert decide(resting, NOW + timedelta(hours=2)) == []  # still closed after the 401
    reopened = fold(resting, closed(None, "open", NOW + timedelta(hours=2)))
    [resume] = decide(reopened, NOW + timedelta(hours=2))
    assert isinstance(resume, cmd.Resume) and resume.command_id == "resume:chip-1:4"


def test_a_chip_cooled_for_review_is_never_resumed_automatically() -> None:
    health = apply(healthy_chip(), ev.Cooled(
        event_id="x", chip_id="chip-1", command_id="close", occurred_at=NOW, reason="review",
        until=None, previous_status=Status.WARMING))
    assert decide(health, NOW + timedelta(days=30)) == []


def test_resumed_chip_starts_with_a_clean_window() -> None:
    signals = [s for n in range(30) for s in conversation(n, delivered=False)]
    health = apply(fold(cooled(), *signals), ev.Resumed(
        event_id="y", chip_id="chip-1", command_id="resume", occurred_at=NOW,
        status=Status.WARMING))
    assert health.chip.status is Status.WARMING and decide(health, NOW) == []


def test_rest_escalates_one_four_twenty_four_hours_within_a_week() -> None:
    chip = healthy_chip().chip
    assert escalating_rest(chip, NOW) == timedelta(hours=1)
    twice = msgspec.structs.replace(chip, cool_streak=1, last_cooled_at=NOW - timedelta(hours=3))
    assert escalating_rest(twice, NOW) == timedelta(hours=4)
    thrice = msgspec.structs.replace(twice, cool_streak=2)
    assert escalating_rest(thrice, NOW) == timedelta(hours=24)
    long_ago = msgspec.structs.replace(thrice, last_cooled_at=NOW - timedelta(days=8))
    assert escalating_rest(long_ago, NOW) == timedelta(hours=1)


def test_evidence_that_asks_for_a_longer_rest_than_the_escalation_sets_until() -> None:
    [cool] = decide(fold(healthy_chip(), closed(402)), NOW)
    assert isinstance(cool, cmd.Cool) and cool.until == NOW + timedelta(days=1)


def test_a_ban_outranks_a_rest_and_is_reported_even_while_cooling() -> None:
    health = fold(cooled(), closed(403, at=NOW + timedelta(minutes=5)))
    [ban] = decide(health, NOW + timedelta(minutes=5))
    assert isinstance(ban, cmd.ReportBan) and "403" in ban.evidence


def test_banned_or_retired_chips_get_nothing() -> None:
    assert decide(fold(healthy_chip(Status.BANNED), closed(403)), NOW) == []
    assert decide(fold(healthy_chip(Status.PROVISIONING), closed(401)), NOW) == []


def test_traffic_batches_the_pending_counters_and_then_starts_over() -> None:
    health = fold(healthy_chip(), *conversation(1, replied=True), *conversation(2))
    health, batch = take_traffic(health, "obs:chip-1:9", NOW)
    assert batch == cmd.ObserveTraffic(command_id="obs:chip-1:9", sent=2, delivered=2, read=1,
                                       replied=1, failed=0, received=1,
                                       health_score=score(health, NOW).score)
    assert take_traffic(health, "obs:chip-1:10", NOW)[1] is None


def test_traffic_is_not_sent_to_a_chip_that_cannot_take_it() -> None:
    health = fold(healthy_chip(Status.BANNED), *conversation(1))
    assert take_traffic(health, "x", NOW)[1] is None


def test_disconnects_alone_make_no_traffic_batch() -> None:
    health = fold(healthy_chip(), closed(None, "connecting"))
    assert take_traffic(health, "x", NOW)[1] is None


def test_custom_policy_window() -> None:
    policy = HealthPolicy(bucket_seconds=60, window_buckets=2)
    from julia_chips.health.model.monitoring import observe
    health = observe(healthy_chip(), receipt(1, "ERROR"), policy)
    assert score(health, NOW + timedelta(minutes=1), policy).window.failed == 1
    assert score(health, NOW + timedelta(minutes=3), policy).window.failed == 0


def test_the_traffic_batch_carries_the_chips_score_of_the_window() -> None:
    good = fold(healthy_chip(), *[s for n in range(30) for s in conversation(n)])
    poor = fold(healthy_chip(), *[s for n in range(30) for s in conversation(n, n % 3 > 0)])
    [good_score, poor_score] = [take_traffic(h, "x", NOW)[1].health_score  # type: ignore[union-attr]
                                for h in (good, poor)]
    assert good_score == 1.0
    assert poor_score == score(poor, NOW).score < 0.75  # a third failed: lower, as ranked
