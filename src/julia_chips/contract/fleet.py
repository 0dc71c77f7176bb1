"""Fleet-wide events on `fleet.evt.<topic>`: the ban brake that stops prospecting everywhere."""

from __future__ import annotations

from datetime import datetime

import msgspec


class FleetEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: str
    occurred_at: datetime


class FleetBrakeEngaged(FleetEvent, frozen=True, kw_only=True, tag="FleetBrakeEngaged"):
    reason: str
    bans_in_window: int
    window_seconds: float
    until: datetime  # released by itself then, unless an operator releases it earlier


class FleetBrakeReleased(FleetEvent, frozen=True, kw_only=True, tag="FleetBrakeReleased"):
    reason: str  # "operator" or "cool-off passed"


AnyFleetEvent = FleetBrakeEngaged | FleetBrakeReleased


class BrakeReleaseReply(msgspec.Struct, frozen=True, kw_only=True):
    """The health monitor's answer on `fleet.cmd.brake.release` (`health/monitor.py`,
    `_on_release`); `julia-chips brake release` and `POST /operator/brake/release` ask."""

    ok: bool
    engaged: bool
