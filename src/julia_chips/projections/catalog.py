"""The projections this system runs, by name (`julia-chips projections rebuild NAME`)."""

from __future__ import annotations

from julia_chips.projections.base import Projection
from julia_chips.projections.chips import ChipsProjection
from julia_chips.projections.doctors import doctor_projections
from julia_chips.projections.fleet import FleetBrakeProjection
from julia_chips.projections.warmer_metrics import WarmerMetricsProjection

_ALL: tuple[Projection, ...] = (ChipsProjection(), WarmerMetricsProjection(),
                                FleetBrakeProjection(), *doctor_projections())
PROJECTIONS: dict[str, Projection] = {p.name: p for p in _ALL}


def dependents_of(name: str) -> list[str]:
    """Projections whose rows reference `name`'s: emptied and rebuilt along with it."""
    return [p.name for p in PROJECTIONS.values() if p.after == name]


def rebuild_set(name: str | None) -> list[str]:
    """`name` and whatever depends on it (all when None), in the order they may be written."""
    if name is None:
        return list(PROJECTIONS)
    if name not in PROJECTIONS:
        raise KeyError(f"unknown projection {name!r}; known: {', '.join(PROJECTIONS)}")
    return [name, *dependents_of(name)]
