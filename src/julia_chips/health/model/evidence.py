"""What a gateway signal proves about a chip: a ban, a logout to undo, a reason to rest, or
nothing at all.

A false ban is expensive (failover, a 30-day quarantine of the doctors the chip prospected,
a step towards the fleet brake), so only signals the sources call a ban or an account lock
ban; a signal that only says "slow down" or "the socket dropped" never does. Every row names
the reference it comes from (docs/health-evidence.md renders this table).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

import msgspec


class Verdict(StrEnum):
    BAN = "ban"  # ReportBan with the evidence
    COOL = "cool"  # Cool: the chip rests, escalating with repeats
    RELINK = "relink"  # Relink: logged out, not banned; the activator offers a new link
    TRANSIENT = "transient"  # reconnect or back off in the sender; no state change


class Source(StrEnum):
    EVOLUTION_CLOSE = "evolution connection.update"
    EVOLUTION_SEND = "evolution send error"
    CLOUD_API_ERROR = "cloud api error code"
    CLOUD_API_QUALITY = "cloud api phone_number_quality_update"
    CLOUD_API_ACCOUNT = "cloud api account_update"


class EvidenceRow(msgspec.Struct, frozen=True, kw_only=True):
    source: Source
    code: str  # the code or event name exactly as the gateway sends it
    meaning: str
    verdict: Verdict
    reference: str  # where in ../shared/reference/ the meaning comes from
    min_rest: timedelta | None = None  # a rest the source itself implies, if longer


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """A classified signal: what to do and the evidence to record with it."""

    verdict: Verdict
    reason: str
    evidence: str
    min_rest: timedelta | None = None


_EVO = "gateways-evolution-waha.md §1.4 Baileys DisconnectReason"
_CLOUD = "salvy-cloudapi-limits.md §2 Error codes a fleet manager must handle"
_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


def _row(source: Source, code: str | int, meaning: str, verdict: Verdict, reference: str,
         min_rest: timedelta | None = None) -> EvidenceRow:
    return EvidenceRow(source=source, code=str(code), meaning=meaning, verdict=verdict,
                       reference=reference, min_rest=min_rest)


B, C, R, T = Verdict.BAN, Verdict.COOL, Verdict.RELINK, Verdict.TRANSIENT
EVIDENCE: tuple[EvidenceRow, ...] = (
    _row(Source.EVOLUTION_CLOSE, 401, "logged out: the session was unlinked (device_removed)",
         R, _EVO),
    _row(Source.EVOLUTION_CLOSE, 403, "forbidden: account banned or locked (community)", B, _EVO),
    _row(Source.EVOLUTION_CLOSE, 402, "temporary ban, carries a timestamp (community)", C, _EVO,
         _DAY),
    _row(Source.EVOLUTION_CLOSE, 406, "permanent ban (community)", B, _EVO),
    _row(Source.EVOLUTION_CLOSE, 408, "connection lost / timed out: reconnect", T, _EVO),
    _row(Source.EVOLUTION_CLOSE, 411, "multidevice mismatch: reconnect", T, _EVO),
    _row(Source.EVOLUTION_CLOSE, 428, "connection closed (or QR limit on `refused`)", T, _EVO),
    _row(Source.EVOLUTION_CLOSE, 440, "connection replaced by another client", T, _EVO),
    _row(Source.EVOLUTION_CLOSE, 500, "bad session: reconnect", T, _EVO),
    _row(Source.EVOLUTION_CLOSE, 503, "service unavailable (community: may precede a ban)", T,
         _EVO),
    _row(Source.EVOLUTION_CLOSE, 515, "restart required: normal after pairing", T, _EVO),
    _row(Source.EVOLUTION_SEND, 429, "rate-overlimit from WhatsApp on a send", C,
         "gateways-evolution-waha.md §3 item 8"),
    _row(Source.CLOUD_API_ERROR, 368, "temporarily blocked for policy violations", C, _CLOUD,
         _DAY),
    _row(Source.CLOUD_API_ERROR, 131031, "account locked (policy, or a failed 2SV PIN)", B,
         _CLOUD),
    _row(Source.CLOUD_API_ERROR, 131048, "spam rate limit: earlier messages blocked or flagged",
         C, _CLOUD, 4 * _HOUR),
    _row(Source.CLOUD_API_ERROR, 130429, "throughput ceiling of the number: back off", T,
         "salvy-cloudapi-limits.md §2 Throughput and pair rate"),
    _row(Source.CLOUD_API_ERROR, 131056, "pair rate limit to one recipient", T,
         "salvy-cloudapi-limits.md §2 Throughput and pair rate"),
    _row(Source.CLOUD_API_ERROR, 131026, "undeliverable to this recipient", T, _CLOUD),
    _row(Source.CLOUD_API_ERROR, 131049, "per-user marketing limit (ecosystem engagement)", T,
         _CLOUD),
    _row(Source.CLOUD_API_QUALITY, "FLAGGED", "quality will drop if negative feedback continues",
         C, "salvy-cloudapi-limits.md §2 Webhooks; Quality rating"),
    _row(Source.CLOUD_API_QUALITY, "DOWNGRADE", "messaging limit lowered", C,
         "salvy-cloudapi-limits.md §2 Webhooks", _DAY),
    _row(Source.CLOUD_API_QUALITY, "RED", "quality rating low (blocks and reports, ~7 days)", C,
         "salvy-cloudapi-limits.md §2 Quality rating", _DAY),
    _row(Source.CLOUD_API_QUALITY, "UNFLAGGED", "positive feedback", T,
         "salvy-cloudapi-limits.md §2 Webhooks"),
    _row(Source.CLOUD_API_QUALITY, "UPGRADE", "messaging limit raised", T,
         "salvy-cloudapi-limits.md §2 Webhooks"),
    _row(Source.CLOUD_API_ACCOUNT, "ACCOUNT_RESTRICTION", "business-initiated messaging restricted",
         C, "salvy-cloudapi-limits.md §2 Webhooks; Opt-in (escalating blocks)", _DAY),
    _row(Source.CLOUD_API_ACCOUNT, "DISABLED_UPDATE", "account disabled (ban_info)", B,
         "salvy-cloudapi-limits.md §2 Webhooks"),
)
_BY_KEY = {(row.source, row.code): row for row in EVIDENCE}


def classify(source: Source, code: str | int) -> Finding:
    """The finding for one signal; an unmapped code is transient, never a ban."""
    row = _BY_KEY.get((source, str(code)))
    if row is None:
        return Finding(verdict=Verdict.TRANSIENT, reason=f"{source} {code}: not in the table",
                       evidence=f"{source}={code}")
    return Finding(verdict=row.verdict, reason=f"{source} {row.code}: {row.meaning}",
                   evidence=f"{source}={row.code} ({row.reference})", min_rest=row.min_rest)


def stronger(a: Finding | None, b: Finding) -> Finding:
    """Keep the finding that asks for more: a ban outranks a relink (a logged-out chip that
    is also rate-limited must be linked again before any rest can end), which outranks a
    rest, which outranks nothing."""
    rank = {Verdict.TRANSIENT: 0, Verdict.COOL: 1, Verdict.RELINK: 2, Verdict.BAN: 3}
    if a is None or rank[b.verdict] > rank[a.verdict]:
        return b
    return a
