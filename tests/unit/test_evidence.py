"""The ban/restriction evidence table, driven by payloads shaped like ../shared/reference/.

Each fixture becomes the typed signal a gateway decoder produces, is folded into a healthy
warming chip, and must lead to exactly the command below; transients lead to none. The
expected table is written out here on purpose, not read from health/model/evidence.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.observations import (
    AccountNotice,
    ConnectionUpdate,
    HealthSignal,
    SendRefused,
)
from julia_chips.gateways.evolution.errors import RateLimited, error_from_response
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.health.model.evidence import EVIDENCE, Source, Verdict, classify
from julia_chips.health.model.monitoring import decide
from tests.unit.health_builders import NOW, fold, healthy_chip

FIXTURES = Path(__file__).parent.parent / "fixtures" / "health"
DAY, HOURS_4 = timedelta(days=1), timedelta(hours=4)
BAN, COOL, RELINK, NONE = cmd.ReportBan, cmd.Cool, cmd.Relink, None
# fixture -> (command, the `until` a Cool must carry: None = the chip's escalating rest)
EXPECTED: dict[str, tuple[type[cmd.ChipCommand] | None, timedelta | None]] = {
    "evolution_close_401": (RELINK, None),  # logged out, not banned: linked again
    "evolution_close_403": (BAN, None),
    "evolution_close_402": (COOL, DAY),
    "evolution_close_406": (BAN, None),
    "evolution_close_408": (NONE, None),
    "evolution_close_411": (NONE, None),
    "evolution_close_428": (NONE, None),
    "evolution_close_440": (NONE, None),
    "evolution_close_500": (NONE, None),
    "evolution_close_503": (NONE, None),
    "evolution_close_515": (NONE, None),
    "evolution_refused_428": (NONE, None),
    "evolution_connecting": (NONE, None),
    "evolution_send_429": (COOL, None),
    "cloudapi_status_failed_368": (COOL, DAY),
    "cloudapi_send_error_368": (COOL, DAY),
    "cloudapi_status_failed_131031": (BAN, None),
    "cloudapi_status_failed_131048": (COOL, HOURS_4),
    "cloudapi_status_failed_130429": (NONE, None),
    "cloudapi_status_failed_131056": (NONE, None),
    "cloudapi_status_failed_131026": (NONE, None),
    "cloudapi_status_failed_131049": (NONE, None),
    "cloudapi_quality_flagged": (COOL, None),
    "cloudapi_quality_downgrade": (COOL, DAY),
    "cloudapi_quality_unflagged": (NONE, None),
    "cloudapi_quality_upgrade": (NONE, None),
    "cloudapi_phone_number_red": (COOL, DAY),
    "cloudapi_account_restriction": (COOL, DAY),
    "cloudapi_account_disabled": (BAN, None),
}


def _cloud_change(body: dict[str, Any]) -> dict[str, Any]:
    change: dict[str, Any] = body["entry"][0]["changes"][0]
    return change


def signal_of(name: str, raw: bytes) -> HealthSignal:
    """What a gateway decoder makes of the payload (Evolution's decoders are the real ones;
    gateways/ has no Cloud API webhook decoder yet, so its three shapes are read here)."""
    body = json.loads(raw)
    if name.startswith("evolution_send"):
        error = error_from_response(body["status"], raw)
        assert isinstance(error, RateLimited)
        return SendRefused(instance="inst-1", gateway="evolution", code=429, observed_at=NOW)
    if name.startswith("evolution"):
        update = decode_evolution(raw, received_at=NOW)
        assert isinstance(update, ConnectionUpdate)
        return update
    if "error" in body:
        return SendRefused(instance="inst-1", gateway="cloud_api", code=body["error"]["code"],
                           observed_at=NOW)
    if "quality_rating" in body:
        return AccountNotice(instance="inst-1", field="phone_number_quality_update",
                             event=body["quality_rating"], observed_at=NOW)
    change = _cloud_change(body)
    if change["field"] == "messages":
        [error] = change["value"]["statuses"][0]["errors"]
        return SendRefused(instance="inst-1", gateway="cloud_api", code=error["code"],
                           observed_at=NOW)
    return AccountNotice(instance="inst-1", field=change["field"],
                         event=change["value"]["event"], observed_at=NOW)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_signal_leads_to_the_right_command(name: str) -> None:
    raw = (FIXTURES / f"{name}.json").read_bytes()
    commands = decide(fold(healthy_chip(), signal_of(name, raw)), NOW)
    expected, until = EXPECTED[name]
    if expected is None:
        assert commands == []
        return
    [command] = commands
    assert type(command) is expected
    if isinstance(command, cmd.Cool):
        assert command.until == (NOW + until if until else None)
    if isinstance(command, cmd.ReportBan):
        assert "reference" not in command.evidence and ".md" in command.evidence


def test_every_fixture_is_in_the_table_and_every_row_has_a_fixture() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)
    codes = {(row.source, row.code) for row in EVIDENCE}
    covered = {(classify_source(n), code_of(n)) for n in EXPECTED}
    assert codes <= covered, codes - covered


def classify_source(name: str) -> Source:
    if name.startswith("evolution_send"):
        return Source.EVOLUTION_SEND
    if name.startswith("evolution"):
        return Source.EVOLUTION_CLOSE
    if "quality" in name or "phone_number" in name:
        return Source.CLOUD_API_QUALITY
    if "account" in name:
        return Source.CLOUD_API_ACCOUNT
    return Source.CLOUD_API_ERROR


def code_of(name: str) -> str:
    signal = signal_of(name, (FIXTURES / f"{name}.json").read_bytes())
    match signal:
        case ConnectionUpdate():
            return str(signal.status_reason)
        case SendRefused():
            return str(signal.code)
        case AccountNotice():
            return signal.event
    raise AssertionError(name)


def test_an_unknown_code_is_transient_never_a_ban() -> None:
    assert classify(Source.EVOLUTION_CLOSE, 999).verdict is Verdict.TRANSIENT
    assert classify(Source.CLOUD_API_ERROR, 1).verdict is Verdict.TRANSIENT


def test_a_transient_close_changes_no_state_but_the_window() -> None:
    before = healthy_chip()
    after = fold(before, signal_of("evolution_close_428",
                                   (FIXTURES / "evolution_close_428.json").read_bytes()))
    assert after.finding is None and after.chip == before.chip
