"""Doctors per chip (the seed's "distribution of doctors per instance"): a query over
`doctors`, which knows each doctor's chip, and `julia_chips`, which knows each chip's state.

A query, not a table: a second copy of the counts would be one more thing a rebuild must
keep equal to the doctors' rows. Doctor ids only: the read models hold no phone (LGPD).
"""

from __future__ import annotations

import asyncpg
import msgspec

from julia_chips.contract.chip import Status

_PER_CHIP = """SELECT coalesce(c.id::text, d.chip_id) AS chip_id, c.status,
        coalesce(d.n, 0) AS doctors
    FROM julia_chips c FULL JOIN (
        SELECT chip_id, count(*) AS n FROM doctors WHERE chip_id IS NOT NULL GROUP BY chip_id
    ) d ON d.chip_id = c.id::text
    ORDER BY 1"""


class ChipDoctors(msgspec.Struct, frozen=True, kw_only=True):
    count: int  # doctors whose conversation this chip holds
    doctor_ids: list[str]  # in id order


class ChipShare(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    status: Status | None  # None: the balancer assigned a chip `julia_chips` has no row for
    doctors: int


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    chips: list[ChipShare]  # every chip in `julia_chips` (zeros included), in id order
    by_status: dict[str, int]  # doctors held by chips in each state, every state present
    unassigned: int  # doctors no chip holds (never assigned, or quarantined)
    on_unknown_chips: int  # doctors held by chips with no `julia_chips` row
    doctors_total: int


async def chip_doctors(conn: asyncpg.Connection | asyncpg.Pool, chip_id: str) -> ChipDoctors:
    ids = [r["doctor_id"] for r in await conn.fetch(
        "SELECT doctor_id FROM doctors WHERE chip_id = $1 ORDER BY doctor_id", chip_id)]
    return ChipDoctors(count=len(ids), doctor_ids=ids)


async def distribution(conn: asyncpg.Connection | asyncpg.Pool) -> Distribution:
    chips = [ChipShare(chip_id=r["chip_id"], doctors=r["doctors"],
                       status=Status(r["status"]) if r["status"] is not None else None)
             for r in await conn.fetch(_PER_CHIP)]
    by_status = {s.value: 0 for s in Status}
    for chip in chips:
        if chip.status is not None:
            by_status[chip.status.value] += chip.doctors
    unassigned = await conn.fetchval("SELECT count(*) FROM doctors WHERE chip_id IS NULL")
    unknown = sum(c.doctors for c in chips if c.status is None)
    return Distribution(chips=chips, by_status=by_status, unassigned=unassigned,
                        on_unknown_chips=unknown,
                        doctors_total=sum(by_status.values()) + unknown + unassigned)
