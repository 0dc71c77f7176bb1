"""The dashboard's HTML: the templates in `templates/` filled with escaped values.

Chip ids, reasons and event fields are strings anyone who reaches NATS or a webhook can
choose, so nothing reaches a page unescaped: every value goes through `text` (or is built
from pieces that did), and the pages' Content-Security-Policy runs no inline script.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib.resources import files
from string import Template
from typing import Any, NewType

from julia_chips.contract.chip import Status
from julia_chips.http.dashboard.views import ChipLine, event_details
from julia_chips.http.responses import ChipsHealth, ChipView, EventsPage
from julia_chips.privacy import mask_phone

Html = NewType("Html", str)  # markup whose every value was escaped

_FOLDER = files("julia_chips.http.dashboard") / "templates"
_TEMPLATES = {name: Template((_FOLDER / f"{name}.html").read_text()) for name in ("fleet", "chip")}
_QR_PREFIX = "data:image/png;base64,"


def text(value: object) -> Html:
    return Html(html.escape("" if value is None else str(value), quote=True))


def _join(parts: Iterable[Html]) -> Html:
    return Html("".join(parts))


def _fill(template: str, **values: Html) -> str:
    return _TEMPLATES[template].substitute(values)


def _utc(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def when(value: datetime | None) -> Html:
    return text(_utc(value))


def _health(score: float | None) -> str:
    return "" if score is None else f"{score:.2f}"


def _progress(fraction: float) -> Html:
    shown = min(max(fraction, 0.0), 1.0)
    return Html(f'<progress max="1" value="{shown:.3f}"></progress> '
                f'<span class="pct">{round(shown * 100)}%</span>')


def chip_row(line: ChipLine) -> Html:
    """One `<tr>` of the chip table; `dashboard.js` redraws the same cells on an event."""
    chip = text(line.id)
    return Html(
        f'<tr data-chip="{chip}" data-status="{text(line.status)}">'
        f'<td class="c-id"><a href="/ui/chips/{chip}"><code>{text(line.id[:8])}</code></a></td>'
        f'<td class="c-status"><span class="badge s-{text(line.status)}">'
        f'{text(line.status)}</span></td>'
        f'<td class="c-number">{text(line.number)}</td>'
        f'<td class="c-progress">{_progress(line.warmer_progress)}</td>'
        f'<td class="c-day">{text(line.warm_day)}</td>'
        f'<td class="c-cap">{text(line.daily_cap)}</td>'
        f'<td class="c-health">{text(_health(line.health_score))}</td>'
        f'<td class="c-doctors">{text(line.doctors)}</td></tr>')


def _state_cards(by_status: Mapping[str, int]) -> Html:
    return _join(Html(f'<a class="card state s-{text(s)}" href="/?status={text(s)}">'
                      f'<h2>{text(s)}</h2><p class="big" id="count-{text(s)}">'
                      f'{text(by_status.get(s, 0))}</p></a>') for s in Status)


def _filters(current: Status | None) -> Html:
    links = [("all", "/", current is None)] + [
        (s.value, f"/?status={s.value}", current is s) for s in Status]
    return _join(Html(f'<a href="{text(href)}"{" aria-current=page" if on else ""}>'
                      f'{text(name)}</a>') for name, href, on in links)


def fleet_page(health: ChipsHealth, lines: list[ChipLine], total: int,
               current: Status | None, after: str) -> str:
    fleet = health.fleet
    brake = fleet.brake
    backlog = fleet.backlog
    lags = health.projections
    note = ("" if len(lines) == total else
            f"the first {len(lines)} of {total} chips; /chips pages through the rest")
    return _fill(
        "fleet", after=text(after), filter=text(current.value if current else ""),
        total=text(fleet.chips_total), state_cards=_state_cards(fleet.by_status),
        bans=text(fleet.banned_last_7d), brake=text("engaged" if brake.engaged else "released"),
        brake_detail=text(f"{brake.reason or ''} until {_utc(brake.until)} UTC" if brake.engaged
                          else (brake.reason or "")),
        backlog=text(backlog.waiting),
        backlog_detail=text(f"oldest waits {backlog.oldest_age_seconds:.0f} s"
                            if backlog.waiting else "nothing waits"),
        lag=text(max((p.lag for p in lags.values()), default=0)),
        lag_detail=text(", ".join(f"{name} {p.lag}" for name, p in sorted(lags.items())
                                  if p.lag) or "every read model caught up"),
        filters=_filters(current), rows=_join(chip_row(line) for line in lines),
        table_note=text(note))


def _facts(view: ChipView) -> Html:
    facts: list[tuple[str, str, Html]] = [
        ("number", "number", text(mask_phone(view.phone_number))),
        ("area code", "ddd", text(view.ddd)),
        ("warm-up", "warmer_progress", _progress(view.warmer_progress)),
        ("warm day", "warm_day", text(view.warm_day)),
        ("daily cap", "daily_cap", text(view.daily_cap)),
        ("health", "health_score", text(_health(view.health_score))),
        ("instance", "instance", text(view.instance)),
        ("host", "host", text(view.host)),
        ("created", "created_at", when(view.created_at)),
        ("activated", "activated_at", when(view.activated_at)),
        ("ready", "ready_at", when(view.ready_at)),
        ("cooling until", "cooling_until", when(view.cooling_until)),
        ("cool reason", "cool_reason", text(view.cool_reason)),
        ("banned", "banned_at", when(view.banned_at)),
        ("ban reason", "ban_reason", text(view.ban_reason)),
        ("waits for review", "review_reason", text(view.review_reason)),
    ]
    return _join(Html(f'<dt>{text(label)}</dt><dd data-field="{text(field)}">{value}</dd>')
                 for label, field, value in facts)


def _relink(view: ChipView) -> Html:
    """The pairing code or QR while the chip relinks, when the read model carries them
    (a `relink` object on `/chips/{id}`); nothing otherwise."""
    relink: Any = getattr(view, "relink", None)
    fields = relink if isinstance(relink, dict) else (
        {k: getattr(relink, k) for k in relink.__struct_fields__} if relink else {})
    code, qr = fields.get("pairing_code"), fields.get("qr")
    if not (code or qr):
        return Html("")
    parts = [Html('<section class="relink" id="relink"><h2>relinking</h2>')]
    if code:
        parts.append(Html(f'<p>pairing code <code class="pairing">{text(code)}</code></p>'))
    if isinstance(qr, str) and qr.startswith(_QR_PREFIX):
        parts.append(Html(f'<img class="qr" alt="QR code to link the number" '
                          f'src="{text(qr)}">'))
    elif qr:
        parts.append(Html(f'<pre class="qr">{text(qr)}</pre>'))
    parts.append(Html("</section>"))
    return _join(parts)


def event_row(seq: int, occurred_at: datetime, kind: str, details: str) -> Html:
    return Html(f'<tr data-seq="{text(seq)}"><td class="seq">{text(seq)}</td>'
                f'<td class="when">{when(occurred_at)}</td><td class="type">{text(kind)}</td>'
                f'<td class="details"><code>{text(details)}</code></td></tr>')


def chip_page(view: ChipView, history: EventsPage, after: str, note: str) -> str:
    events = [event_row(e.seq, e.occurred_at, e.type, event_details(e.event))
              for e in reversed(history.items)]  # newest first
    doctors = view.doctors
    return _fill(
        "chip", chip_id=text(view.id), short_id=text(view.id[:8]), after=text(after),
        status=text(view.status), facts=_facts(view), relink=_relink(view),
        doctor_count=text(doctors.count),
        doctors=text(", ".join(doctors.doctor_ids) if doctors.doctor_ids else "none"),
        events=_join(events), history_note=text(note))
