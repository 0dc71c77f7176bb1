"""The `julia_chips` row fold agrees with the chip actor's fold, and replays change nothing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from julia_chips.chip.model.lifecycle import ChipState
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.projections.audit import compare
from julia_chips.projections.rows.chip import ChipRow, apply
from tests.integration.test_projections_lifecycles import decided_history, random_commands

CHIP = "0b8f3c52-8c1e-4a4b-9d7e-3f1e2d4c5b6a"


def _history(seed: int, steps: int) -> tuple[ChipState, list[AnyChipEvent]]:
    rng = random.Random(seed)
    return decided_history(CHIP, random_commands(rng, steps), datetime(2026, 1, 1, tzinfo=UTC),
                           lambda: timedelta(hours=rng.randrange(1, 30)))


def _project(events: list[AnyChipEvent]) -> ChipRow | None:
    row = None
    for seq, event in enumerate(events, 1):
        row = apply(row, seq, event)
    return row


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**9), steps=st.integers(0, 40))
def test_row_fold_agrees_with_actor_fold(seed: int, steps: int) -> None:
    state, events = _history(seed, steps)
    assert compare(state, _project(events), len(events)) == []


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10**9), replay_from=st.integers(1, 30))
def test_replayed_events_change_nothing(seed: int, replay_from: int) -> None:
    _, events = _history(seed, 20)
    row = _project(events)
    for seq, event in enumerate(events[replay_from - 1:], replay_from):
        assert apply(row, seq, event) is row


def test_events_of_an_unprovisioned_chip_make_no_row() -> None:
    _, events = _history(1, 5)
    assert apply(None, 7, events[1]) is None
