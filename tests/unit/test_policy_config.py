"""Every policy number comes from the configuration and reaches the part that applies it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from julia_chips.balancer.runner import balancer_settings
from julia_chips.config import ConfigError, load_config
from julia_chips.health.monitor import monitor_settings

POLICY_ENV = {"JULIA_QUARANTINE_DAYS": "45", "JULIA_WEEKLY_PROSPECTING_CAP": "1",
              "JULIA_BRAKE_THRESHOLD": "5", "JULIA_BRAKE_WINDOW_MINUTES": "30",
              "JULIA_BRAKE_COOL_OFF_HOURS": "12", "JULIA_LEDGER_MAX_AGE_DAYS": "30"}


def test_the_defaults_are_the_designed_policy() -> None:
    protection = balancer_settings(load_config({})).protection
    brake = monitor_settings(load_config({})).brake
    assert (protection.quarantine, protection.weekly_prospecting_cap) == (timedelta(days=30), 2)
    assert (brake.threshold, brake.window, brake.cool_off) == (
        3, timedelta(hours=1), timedelta(hours=6))
    assert load_config({}).ledger_max_age_days == 90


def test_configured_policy_reaches_the_balancer_and_the_monitor() -> None:
    config = load_config(POLICY_ENV)
    protection = balancer_settings(config).protection
    brake = monitor_settings(config).brake
    assert (protection.quarantine, protection.weekly_prospecting_cap) == (timedelta(days=45), 1)
    assert (brake.threshold, brake.window, brake.cool_off) == (
        5, timedelta(minutes=30), timedelta(hours=12))
    assert config.ledger_max_age_days == 30


@pytest.mark.parametrize(("var", "bad"), [
    ("JULIA_QUARANTINE_DAYS", "-1"), ("JULIA_WEEKLY_PROSPECTING_CAP", "two"),
    ("JULIA_BRAKE_THRESHOLD", "0"), ("JULIA_BRAKE_WINDOW_MINUTES", "0.5"),
    ("JULIA_BRAKE_COOL_OFF_HOURS", "1000"),
    ("JULIA_LEDGER_MAX_AGE_DAYS", "7"),  # shorter than the 8 days a balancer rebuild replays
])
def test_a_bad_policy_number_stops_start_up_naming_it(var: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=var):
        load_config({var: bad})
