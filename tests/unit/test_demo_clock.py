"""The demo's accelerated clock: what runs on it (the domain, the replay windows, the
activation's waits, stretched to the same real seconds) and where a restart picks it up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from julia_chips.activation.model.steps import SagaPolicy, Step
from julia_chips.clock import STREAM_EPOCH, AcceleratedClock, SystemClock
from julia_chips.contract.replay import EVOLUTION
from julia_chips.demo.timeline import clock_of, demo_clock, first_morning, remember

SPEED = 86_400 / 30


def test_a_reading_maps_back_to_the_wall_clock_jetstream_stamps_by() -> None:
    wall = datetime.now(UTC)
    start = first_morning(wall)
    clock = AcceleratedClock(start, SPEED)
    stamp = clock.stream_time(start + timedelta(days=1))  # a simulated day: 30 real seconds
    assert abs((stamp - (wall + timedelta(seconds=30))).total_seconds()) < 1
    # before this run: the process may have been stopped for long; read the whole stream
    assert clock.stream_time(start - timedelta(seconds=1)) == STREAM_EPOCH
    assert SystemClock().stream_time(wall) == wall


def test_windows_and_waits_about_real_senders_stretch_with_the_clock() -> None:
    window = EVOLUTION.scaled(SPEED)
    assert window.behind == EVOLUTION.behind * SPEED and window.ahead == EVOLUTION.ahead * SPEED
    now = datetime.now(UTC)
    assert window.admits(now - timedelta(hours=1), now)  # 1.25 real seconds late
    assert not EVOLUTION.admits(now - timedelta(hours=1), now)
    policy = SagaPolicy().scaled(SPEED)
    assert policy.wait_timeout(Step.CODE) == SagaPolicy().wait_timeout(Step.CODE) * SPEED
    assert policy.backoff(3) == SagaPolicy().backoff(3) * SPEED
    assert policy.call_timeout == SagaPolicy().call_timeout  # real seconds already


def test_a_restart_goes_on_from_the_last_reading_and_the_cli_reads_the_same_time(
        tmp_path: Path) -> None:
    first = demo_clock(tmp_path, SPEED)
    assert abs((first.now() - first_morning(datetime.now(UTC))).total_seconds()) < 60 * SPEED
    time.sleep(0.05)
    remember(tmp_path, first)
    reached = first.now()
    again = demo_clock(tmp_path, SPEED)
    assert reached - timedelta(minutes=10) <= again.now() <= reached + timedelta(minutes=10)
    seen = clock_of(tmp_path, demo=True)
    assert abs((seen.now() - first.now()).total_seconds()) < 60 * 10
    assert isinstance(clock_of(tmp_path, demo=False), SystemClock)
    assert isinstance(clock_of(tmp_path / "elsewhere", demo=True), SystemClock)
    (tmp_path / "demo-clock.json").write_text("{not json")
    assert abs((demo_clock(tmp_path, SPEED).now() - first_morning(datetime.now(UTC)))
               .total_seconds()) < 60 * SPEED
