"""The dashboard's HTML shows attacker-reachable strings (chip ids, reasons, event fields,
a relink's pairing code) as text only, and ships its templates and assets as package data."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

import msgspec

from julia_chips.http.dashboard.render import chip_page, chip_row, event_row
from julia_chips.http.dashboard.views import ChipLine, event_details
from julia_chips.http.responses import ChipView, EventsPage
from julia_chips.projections.distribution import ChipDoctors
from julia_chips.projections.rows.chip import ChipRow

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
T = datetime(2026, 11, 27, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _row(**changed: object) -> ChipRow:
    values: dict[str, object] = dict(
        id=EVIL, phone_number="+5511912345678", salvy_account_id=None, status="cooling",
        warmer_progress=0.5, activated_at=T, ready_at=None, banned_at=None, created_at=T,
        ddd=11, instance=EVIL, host=None, warm_day=3, good_days=2, daily_cap=30,
        health_score=0.9, cooling_until=None, cool_reason=EVIL, cooled_from="warming",
        ban_reason=None, retired_at=None, updated_at=T, last_seq=7)
    return ChipRow(**(values | changed))  # type: ignore[arg-type]


def _safe(html: str) -> None:
    assert EVIL not in html and "<script>" not in html and "<img src=x" not in html
    assert "+5511912345678" not in html


def test_a_chip_row_and_an_event_row_show_hostile_strings_as_text() -> None:
    line = ChipLine(id=EVIL, status=EVIL, number=EVIL, warm_day=1, warmer_progress=2.0,
                    daily_cap=1, health_score=None, doctors=0, cooling_until=None,
                    cool_reason=None, ban_reason=None)
    html = chip_row(line)
    _safe(html)
    assert "&lt;script&gt;" in html and 'value="1.000"' in html  # progress clamped
    details = event_details({"type": "Cooled", "reason": EVIL, "phone_number": "+5511912345678"})
    assert "+55 11 *******78" in details
    _safe(event_row(1, T, EVIL, details))


def test_a_chip_page_escapes_everything_and_shows_a_pairing_code_when_relinking() -> None:
    class Relinking(ChipView, frozen=True, kw_only=True):  # the relink fields, when they land
        relink: dict[str, str] | None = None

    doctors = ChipDoctors(count=1, doctor_ids=[EVIL])
    view = Relinking(**msgspec.structs.asdict(_row()), doctors=doctors, review_reason=EVIL,
                     relink={"pairing_code": EVIL, "qr": "javascript:alert(1)"})
    page = chip_page(view, EventsPage(chip_id=EVIL, items=[], next_seq=None), "7:0", EVIL)
    _safe(page)
    assert 'class="pairing"' in page and "<img class=\"qr\"" not in page  # not a data: PNG
    plain = chip_page(ChipView(**msgspec.structs.asdict(_row()), doctors=doctors),
                      EventsPage(chip_id=EVIL, items=[], next_seq=None), "7:0", "")
    assert 'id="relink"' not in plain


def test_the_templates_and_assets_ship_as_package_data() -> None:
    """A non-editable install carries only what pyproject's package-data names."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["julia_chips"]
    package = ROOT / "src" / "julia_chips"
    data = [p.relative_to(package).as_posix() for p in (package / "http" / "dashboard").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data and all(any(fnmatch(f, g) for g in globs) for f in data), (data, globs)
