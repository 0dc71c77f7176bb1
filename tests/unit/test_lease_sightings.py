"""What a standby makes of the lease keys it has seen (jetstream/leases/sightings.py): a key
is held while renewed, stale once unrenewed for `stale_after` (worth a presence probe, no
more), free when never seen, deleted or past the TTL; the times are this host's alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from julia_chips.jetstream.leases.sightings import RENEW_EVERY, LeaseTiming, Sightings, Verdict

TIMING = LeaseTiming.for_ttl(10.0)


def test_the_rhythm_of_a_ttl_takes_over_within_two_seconds_and_keeps_the_ttl_as_the_net() -> None:
    assert TIMING.renew_every == RENEW_EVERY == 0.4
    assert TIMING.stale_after == 1.0  # 2.5 renewals missed
    assert TIMING.worst_takeover() < 1.5  # leaves half a second to start the consumer
    short = LeaseTiming.for_ttl(1.0)  # the lowest JULIA_LEASE_TTL: renewals at a third
    assert short.renew_every == 1 / 3 and short.stale_after < short.ttl


def test_a_key_renewed_lately_is_held_then_stale_then_free_at_the_ttl() -> None:
    seen = Sightings()
    seen.saw("p0", "worker-a", revision=7, now=100.0)
    assert seen.verdict("p0", 100.9, TIMING) is Verdict.HELD
    assert seen.verdict("p0", 101.1, TIMING) is Verdict.STALE
    assert seen.verdict("p0", 109.9, TIMING) is Verdict.STALE
    assert seen.verdict("p0", 110.0, TIMING) is Verdict.FREE  # expired: the bucket says nothing


def test_a_renewal_restarts_the_clock_and_a_redelivered_one_does_not() -> None:
    seen = Sightings()
    seen.saw("p0", "worker-a", revision=7, now=100.0)
    seen.saw("p0", "worker-a", revision=7, now=100.8)  # the watch redelivered it
    assert seen.verdict("p0", 101.1, TIMING) is Verdict.STALE
    seen.saw("p0", "worker-a", revision=9, now=101.2)
    assert seen.verdict("p0", 101.3, TIMING) is Verdict.HELD
    sighting = seen.get("p0")
    assert sighting is not None and (sighting.revision, sighting.since) == (9, 101.2)


def test_a_key_never_seen_or_deleted_is_free() -> None:
    seen = Sightings()
    assert seen.verdict("p1", 5.0, TIMING) is Verdict.FREE
    seen.saw("p1", "worker-a", revision=3, now=5.0)
    seen.gone("p1")
    assert seen.verdict("p1", 5.1, TIMING) is Verdict.FREE and seen.get("p1") is None


def test_the_live_heartbeats_are_those_under_a_prefix_not_yet_expired() -> None:
    seen = Sightings()
    seen.saw("worker.a", "a", revision=1, now=0.0)
    seen.saw("worker.b", "b", revision=2, now=5.0)
    seen.saw("p0", "a", revision=3, now=5.0)
    assert set(seen.under("worker.", now=10.5, timing=TIMING)) == {"worker.b"}


@given(st.lists(st.tuples(st.integers(1, 5), st.floats(0, 0.39)), min_size=1, max_size=50))
def test_a_holder_that_renews_every_period_is_never_stale(renewals: list[tuple[int, float]]) -> None:
    """Renewals `renew_every` apart, each a new revision, each seen at its own delay under a
    period: just before the next one is seen, the key is still held."""
    seen, revision = Sightings(), 0
    for n, (step, lag) in enumerate(renewals):
        seen_at = n * TIMING.renew_every + lag
        assert n == 0 or seen.verdict("p0", seen_at - 1e-9, TIMING) is Verdict.HELD
        revision += step
        seen.saw("p0", "a", revision, seen_at)
