"""The heap index picks exactly the chip a full scan would, whatever happened before."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from julia_chips.balancer.model.decide import choose_chip
from julia_chips.balancer.model.fleet import health_of
from julia_chips.balancer.model.state import BalancerState, evolve
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import messages as msg
from julia_chips.contract.chip import Status
from tests.unit.balancer_builders import NOW, add_chip, chip_command, scored, snapshot

CHIPS = [f"c{n}" for n in range(6)]
chip = st.integers(0, len(CHIPS) - 1)
ops = st.lists(st.one_of(
    st.tuples(st.just("send"), chip, st.integers(0, 12)),
    st.tuples(st.just("health"), chip, st.sampled_from([0.2, 0.5, 0.9])),
    st.tuples(st.just("chip"), chip, st.sampled_from([
        cmd.Cool(command_id="x", reason="r"), cmd.Resume(command_id="x"),
        cmd.PutInService(command_id="x"), cmd.TakeOutOfService(command_id="x", reason="r")])),
    st.tuples(st.just("health"), chip, st.sampled_from([0.2, 0.5, 0.9])),
    st.tuples(st.just("pick"), st.booleans(), st.integers(0, 12),
              st.dictionaries(st.sampled_from(CHIPS), st.integers(0, 5), max_size=3)),
), max_size=60)


def scan(state: BalancerState, consented: bool, now: datetime, taken: dict[str, int]
         ) -> str | None:
    """The obvious O(chips) answer the index must agree with."""
    best: tuple[int, float, str] | None = None
    for chip_id, c in state.fleet.serving.items():
        if c.status is not Status.ACTIVE and not consented:
            continue
        left = c.daily_cap - state.fleet.used_today(chip_id, now) - taken.get(chip_id, 0)
        key = (-left, -health_of(c), chip_id)
        if left > 0 and (best is None or key < best):
            best = key
    return None if best is None else best[2]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Status.ACTIVE, Status.WARMING, Status.READY]),
                          st.integers(3, 4)), min_size=len(CHIPS), max_size=len(CHIPS)), ops)
def test_index_agrees_with_a_full_scan(fleet: list[tuple[Status, int]],
                                       steps: list[tuple[object, ...]]) -> None:
    state = BalancerState()
    for chip_id, (status, cap) in zip(CHIPS, fleet, strict=True):
        add_chip(state, chip_id, status, cap)
    for n, step in enumerate(steps):
        match step:
            case ("send", int(c), int(hours)):
                evolve(state, msg.SendAttempted(
                    event_id=f"a{n}", chip_id=CHIPS[c], attempt_id=f"a{n}", doctor_id="d",
                    kind="reply", consented=True, occurred_at=NOW + timedelta(hours=hours)))
            case ("chip", int(c), command):
                chip_command(state, CHIPS[c], command)
            case ("health", int(c), float(score)):  # refused by a banned or retired chip
                chip_command(state, CHIPS[c], cmd.ObserveTraffic(command_id="s",
                                                                 health_score=score))
            case ("pick", bool(consented), int(hours), dict(taken)):
                now = NOW + timedelta(hours=hours)
                before = snapshot(state)
                assert choose_chip(state, consented, now, taken) == scan(state, consented, now,
                                                                         taken)
                assert snapshot(state) == before, "choosing a chip changed the index"


def test_a_chip_whose_health_rises_is_ranked_up_again() -> None:
    """The case lazy invalidation alone gets wrong: a key that rises must be pushed anew."""
    state = BalancerState()
    for chip_id in ("c0", "c1"):
        add_chip(state, chip_id, Status.ACTIVE, 3)
    assert choose_chip(state, True, NOW, {}) == "c0"
    scored(state, "c0", 0.2)
    assert choose_chip(state, True, NOW, {}) == "c1"
    scored(state, "c0", 0.9)
    scored(state, "c1", 0.5)
    assert choose_chip(state, True, NOW, {}) == "c0"
    assert choose_chip(state, True, NOW, {"c0": 1}) == "c1"


def test_attempts_are_forgotten_after_the_ledger_horizon() -> None:
    state = BalancerState()
    for day in range(12):
        evolve(state, msg.SendAttempted(
            event_id=f"a{day}", chip_id="c0", attempt_id=f"a{day}", doctor_id="d",
            kind="reply", consented=True, occurred_at=NOW + timedelta(days=day)))
    assert list(state.attempts) == [f"a{day}" for day in range(3, 12)]
