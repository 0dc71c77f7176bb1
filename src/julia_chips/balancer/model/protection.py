"""Rules that protect doctors from us: opt-out keywords, quiet hours, a weekly prospecting cap.

They are pure functions of the text or the time, so the balancer can apply them in its
decision and a property test can check them over any instant.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
OPT_OUT_KEYWORDS = frozenset({"PARAR", "SAIR", "STOP", "CANCELAR", "DESCADASTRAR"})
_TRIM = " \t\r\n.!;,\u200b"


class ProtectionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    quiet_start: time = time(20, 0)  # prospecting stops at this local time...
    quiet_end: time = time(8, 0)  # ...and may start again at this one
    prospecting_weekdays: frozenset[int] = frozenset(range(6))  # Monday=0 .. Saturday=5
    weekly_prospecting_cap: int = 2  # prospecting messages per doctor per rolling 7 days
    quarantine: timedelta = timedelta(days=30)  # after the prospecting chip was banned


DEFAULT_PROTECTION = ProtectionPolicy()


def _fold(text: str) -> str:
    """Upper case without accents: `Descadastrár` and `DESCADASTRAR` are the same word."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def is_opt_out(text: str) -> bool:
    """Only a message that is the keyword alone counts: "não vou parar de trabalhar" is not
    an opt-out, and treating it as one would silently lose a doctor who is talking to us."""
    return _fold(text.strip(_TRIM)) in OPT_OUT_KEYWORDS


def local_time(now: datetime) -> datetime:
    return now.astimezone(SAO_PAULO)


def local_day(now: datetime) -> int:
    """The São Paulo calendar day as an ordinal: daily caps reset at local midnight."""
    return local_time(now).date().toordinal()


def within_prospecting_hours(now: datetime, policy: ProtectionPolicy = DEFAULT_PROTECTION
                             ) -> bool:
    """Cold outreach only in business hours, Monday to Saturday, doctor's local time."""
    local = local_time(now)
    if local.weekday() not in policy.prospecting_weekdays:
        return False
    return policy.quiet_end <= local.time() < policy.quiet_start


def prospecting_in_week(sent_at: Iterable[datetime], now: datetime) -> int:
    week_ago = now - timedelta(days=7)
    return sum(1 for at in sent_at if at > week_ago)
