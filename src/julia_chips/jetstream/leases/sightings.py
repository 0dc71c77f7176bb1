"""What a standby has seen of the lease keys, and what it may do about each one. Pure: no
I/O and no clock of its own (`now` is this host's monotonic clock, handed in).

A key's revision changes at every renewal, so a standby notes when it first saw each revision
on its own clock, never the holder's (hosts' clocks differ): "not renewed for `stale_after`"
needs no agreement on time. Staleness alone never takes a lease. It only makes the standby
ask whether the holder's NATS connection still exists (`presence.holder_gone`): a slow or
paused holder is stale but present, and keeps its lease until the bucket's TTL expires it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

RENEW_EVERY = 0.4  # seconds between renewals, at most (a third of the TTL when that is less)


@dataclass(frozen=True, kw_only=True)
class LeaseTiming:
    """The rhythm of one TTL. Renewals come every `renew_every`; a lease unrenewed for
    `stale_after` (2.5 renewals missed) is worth a presence probe; a standby looks at what it
    has seen every `look_every` (local reads: the board is pushed to); a probe waits
    `probe_timeout` for the server's "no responders" and asks once more after
    `confirm_after`, so a moment when a cluster node has not yet learnt a subscription from
    its routes is not taken for a death. The TTL stays the net for the death nobody can
    prove (a host cut off, whose socket the server still holds open)."""

    ttl: float
    renew_every: float
    stale_after: float
    look_every: float
    probe_timeout: float = 0.5
    confirm_after: float = 0.1

    @classmethod
    def for_ttl(cls, ttl: float) -> LeaseTiming:
        renew = min(ttl / 3, RENEW_EVERY)
        return cls(ttl=ttl, renew_every=renew, stale_after=2.5 * renew,
                   look_every=min(renew / 4, 0.1))

    def worst_takeover(self) -> float:
        """From a holder's death to a standby's takeover, at most, once its connection closed:
        stale, then the next look, then two probes answered "no responders" at once."""
        return self.stale_after + self.look_every + self.confirm_after


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """A key's holder and revision as last seen, and since when (this host's clock)."""

    holder: str
    revision: int
    since: float


class Verdict(enum.Enum):
    FREE = "free"  # nobody holds it: never taken, released, or expired by now (no marker)
    HELD = "held"  # renewed lately: leave it
    STALE = "stale"  # not renewed for `stale_after`: ask whether its holder is gone


class Sightings:
    """The last sighting of each key, as a KV watch reports puts and deletes."""

    def __init__(self) -> None:
        self._seen: dict[str, Sighting] = {}

    def saw(self, key: str, holder: str, revision: int, now: float) -> None:
        """A put: a new revision restarts the key's clock, the same one (redelivered) not."""
        known = self._seen.get(key)
        if known is None or known.revision != revision:
            self._seen[key] = Sighting(holder=holder, revision=revision, since=now)

    def gone(self, key: str) -> None:
        """A delete or purge: the key is free."""
        self._seen.pop(key, None)

    def get(self, key: str) -> Sighting | None:
        return self._seen.get(key)

    def verdict(self, key: str, now: float, timing: LeaseTiming) -> Verdict:
        sighting = self._seen.get(key)
        if sighting is None or now - sighting.since >= timing.ttl:
            # The bucket drops an expired key without telling its watchers: past the TTL
            # the key is gone, or the watch missed renewals and `create` says so.
            return Verdict.FREE
        if now - sighting.since > timing.stale_after:
            return Verdict.STALE
        return Verdict.HELD

    def under(self, prefix: str, now: float, timing: LeaseTiming) -> dict[str, Sighting]:
        """The keys starting with `prefix` that have not expired, by key."""
        return {key: s for key, s in self._seen.items()
                if key.startswith(prefix) and now - s.since < timing.ttl}
