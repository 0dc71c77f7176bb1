"""An event that decodes but that PostgreSQL refuses goes to the dead letters with its reason
and its subject, and the projection applies the rest of its batch and moves on."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.contract import chip as ev
from julia_chips.contract.codec import encode_event
from julia_chips.contract.subjects import JuliaHeader, Stream, chip_events, dead_letter
from julia_chips.db.migrate import migrate_url
from julia_chips.projections import checkpoints
from julia_chips.projections.service import Projections
from tests.conftest import new_chip_id
from tests.integration.test_projections_lifecycles import T0, caught_up, publish_events


def _day_one(chip: str) -> ev.WarmDayCompleted:
    return ev.WarmDayCompleted(
        event_id=f"{chip}:d1:1", chip_id=chip, command_id="d1", occurred_at=T0, day_number=1,
        messages_sent=10, messages_received=3, delivered=10, read=8, replied=4, failed=0,
        daily_cap=20, next_daily_cap=30, advanced=True, good_days=1, reason="gates passed",
        warmer_progress=0.1)


async def test_a_poison_event_is_dead_lettered_and_the_events_after_it_are_projected(
        nc: NATS, js: JetStreamContext, database_url: str) -> None:
    await migrate_url(database_url)
    good, bad = new_chip_id(), new_chip_id()
    history: list[ev.AnyChipEvent] = [
        ev.Provisioned(event_id=f"{good}:p:1", chip_id=good, command_id="p", occurred_at=T0,
                       ddd=11),
        # Decodes, but its ddd does not fit the INT column: the batch's upsert fails.
        ev.Provisioned(event_id=f"{bad}:p:1", chip_id=bad, command_id="p", occurred_at=T0,
                       ddd=10**12),
        # Its chip has no row, so its metrics row breaks the foreign key (a real constraint).
        _day_one(bad),
        ev.ActivationStarted(event_id=f"{good}:s:1", chip_id=good, command_id="s",
                             occurred_at=T0 + timedelta(minutes=1), host="vps-1"),
    ]
    await publish_events(js, history)  # type: ignore[arg-type]
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    try:
        await caught_up(js, database_url, timeout=20)
    finally:
        await projections.stop()
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id::text, status, last_seq FROM julia_chips")
        assert [tuple(r) for r in rows] == [(good, "activating", 4)]
        assert await checkpoints.read(conn, "julia_chips") == 4
        assert await checkpoints.read(conn, "chip_warmer_metrics") == 4
    finally:
        await conn.close()
    for projection, seq, why in (("julia_chips", 2, "int32"),
                                 ("chip_warmer_metrics", 3, "ForeignKeyViolationError")):
        letter = await js.get_last_msg(Stream.DEAD_LETTER, dead_letter("projection", projection))
        assert letter.data == encode_event(history[seq - 1])
        headers = letter.headers or {}
        assert headers[JuliaHeader.DLQ_SUBJECT] == chip_events(bad)
        reason = headers[JuliaHeader.DLQ_REASON]
        assert reason.startswith(f"projection {projection}, seq {seq}: ") and why in reason, reason
