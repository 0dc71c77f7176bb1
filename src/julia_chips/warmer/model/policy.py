"""The warm-up ramp: how much real, consented traffic a new chip may carry each day.

A chip starts with a small daily cap and earns a bigger one only on days whose delivery,
failure and reply rates show that recipients want the messages. A bad day holds the cap or
steps it back. Nothing here fabricates traffic: the figures are the chip's real counters.
"""

from __future__ import annotations

import msgspec


class WarmupPolicy(msgspec.Struct, frozen=True, kw_only=True):
    first_cap: int = 20  # messages on day 1
    growth: float = 1.5  # cap multiplier per good day, when `schedule` is not given
    full_cap: int = 250  # the cap of a warmed chip
    # The daily caps, step by step; empty: first_cap x growth^n up to full_cap. A good day
    # climbs one step, a bad day steps one back, a quiet day holds.
    schedule: tuple[int, ...] = ()
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
    restrictions: int = 0  # times the chip was cooled during the day: a restriction signal


class DayVerdict(msgspec.Struct, frozen=True, kw_only=True):
    good: bool
    next_cap: int
    reason: str


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def ramp(policy: WarmupPolicy) -> tuple[int, ...]:
    """The ladder of daily caps a chip climbs, one step per good day."""
    if policy.schedule:
        return tuple(sorted(set(policy.schedule)))
    steps, cap = [policy.first_cap], float(policy.first_cap)
    while steps[-1] < policy.full_cap:
        cap *= policy.growth
        steps.append(min(policy.full_cap, max(steps[-1] + 1, round(cap))))
    return tuple(steps)


def _step(cap: int, policy: WarmupPolicy, up: bool) -> int:
    steps = ramp(policy)
    if up:
        return next((s for s in steps if s > cap), steps[-1])
    return next((s for s in reversed(steps) if s < cap), steps[0])


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
    if figures.restrictions:
        problems.append(f"restriction signal seen (cooled {figures.restrictions}x)")
    if not problems:
        return DayVerdict(good=True, next_cap=_step(cap, policy, up=True),
                          reason=f"passed: {rates}")
    # Too little traffic holds the cap; bad signals step it back.
    quiet_only = len(problems) == 1 and figures.sent < policy.min_sent
    next_cap = cap if quiet_only else _step(cap, policy, up=False)
    return DayVerdict(good=False, next_cap=next_cap, reason=f"held: {'; '.join(problems)}; {rates}")


def warmer_progress(good_days: int, policy: WarmupPolicy) -> float:
    """Share of the good days needed before `Ready`, in [0, 1]."""
    return min(1.0, good_days / policy.min_days) if policy.min_days else 1.0
