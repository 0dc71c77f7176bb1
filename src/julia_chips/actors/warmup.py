"""The warm-up ramp: how much real, consented traffic a new chip may carry each day.

A chip starts with a small daily cap and earns a bigger one only on days whose delivery,
failure and reply rates show that recipients want the messages. A bad day holds the cap or
steps it back. Nothing here fabricates traffic: the figures are the chip's real counters.
"""

from __future__ import annotations

import msgspec


class WarmupPolicy(msgspec.Struct, frozen=True, kw_only=True):
    first_cap: int = 20  # messages on day 1
    growth: float = 1.5  # cap multiplier after a good day
    full_cap: int = 250  # the cap of a warmed chip
    step_back: float = 0.75  # cap multiplier after a bad day
    min_days: int = 7  # good days before `Ready` (WARMER_MIN_DAYS)
    max_days: int = 14  # days before a chip that has not passed goes to review
    min_sent: int = 5  # a day with less traffic proves nothing either way
    min_delivery_rate: float = 0.90  # delivered / sent
    max_failure_rate: float = 0.05  # failed / sent
    min_reply_rate: float = 0.05  # replied / delivered


DEFAULT_WARMUP = WarmupPolicy()


class DayFigures(msgspec.Struct, frozen=True, kw_only=True):
    """A warm day's real counters, summed from `TrafficObserved`."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    failed: int = 0
    received: int = 0


class DayVerdict(msgspec.Struct, frozen=True, kw_only=True):
    good: bool
    next_cap: int
    reason: str


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def judge_day(figures: DayFigures, cap: int, policy: WarmupPolicy) -> DayVerdict:
    """Did the day pass its gates, and what cap holds tomorrow?"""
    delivery = _rate(figures.delivered, figures.sent)
    failure = _rate(figures.failed, figures.sent)
    reply = _rate(figures.replied, figures.delivered)
    rates = f"sent={figures.sent} delivery={delivery:.2f} failure={failure:.2f} reply={reply:.2f}"
    problems = []
    if figures.sent < policy.min_sent:
        problems.append(f"too little traffic (< {policy.min_sent})")
    if delivery < policy.min_delivery_rate:
        problems.append(f"delivery below {policy.min_delivery_rate:.2f}")
    if failure > policy.max_failure_rate:
        problems.append(f"failures above {policy.max_failure_rate:.2f}")
    if reply < policy.min_reply_rate:
        problems.append(f"replies below {policy.min_reply_rate:.2f}")
    if not problems:
        next_cap = min(policy.full_cap, max(cap + 1, round(cap * policy.growth)))
        return DayVerdict(good=True, next_cap=next_cap, reason=f"passed: {rates}")
    # Too little traffic holds the cap; bad signals step it back.
    quiet_only = len(problems) == 1 and figures.sent < policy.min_sent
    next_cap = cap if quiet_only else max(policy.first_cap, round(cap * policy.step_back))
    return DayVerdict(good=False, next_cap=next_cap, reason=f"held: {'; '.join(problems)}; {rates}")


def warmer_progress(good_days: int, policy: WarmupPolicy) -> float:
    """Share of the good days needed before `Ready`, in [0, 1]."""
    return min(1.0, good_days / policy.min_days) if policy.min_days else 1.0
