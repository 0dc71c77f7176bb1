"""Rebuild read models by replaying their stream from the first event.

The whole history is folded in memory first (the same folds the runner uses, so the result
equals the incrementally built tables; `julia_chips` also reads the numbers ACTIVATIONS
recorded for chips activated before their `Activated` carried one), then written in one
transaction: tables emptied, rows COPYed, checkpoints set to the last replayed sequence.
Readers see the old tables until the commit. A running projection waits on the advisory
lock and carries on from the new checkpoint (its durable consumer rewinds itself if its
cursor is past it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from julia_chips.jetstream.follower import Follower
from julia_chips.projections import checkpoints
from julia_chips.projections.base import Envelope, Fold
from julia_chips.projections.catalog import PROJECTIONS, rebuild_set

ProgressHook = Callable[[int], None]


class RebuildReport(msgspec.Struct, frozen=True, kw_only=True):
    projections: list[str]
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def replay(nc: NATS, names: list[str], on_progress: ProgressHook | None = None
                 ) -> tuple[dict[str, Fold], int, int]:
    """Fold `names` (all on one stream) over that stream; returns folds, messages read and
    the last sequence read (what the checkpoints are set to)."""
    first = PROJECTIONS[names[0]]
    js = nc.jetstream()
    folds = {name: await PROJECTIONS[name].empty(js) for name in names}

    def feed(seq: int, event: Any) -> None:
        item = Envelope(seq, event)
        for fold in folds.values():
            fold.feed(item)
        if on_progress is not None and read.seen % 1000 == 0:
            on_progress(read.seen)

    read: Follower[Any] = Follower(js, first.stream, first.subjects, first.decode,
                                   feed, reader=f"rebuild {first.name}", live=False)
    await read.start()
    if on_progress is not None:
        on_progress(read.seen)
    return folds, read.seen, read.last_seq


async def write(conn: asyncpg.Connection, folds: dict[str, Fold], last: int) -> None:
    """Swap the tables' contents for the folds', with their checkpoints, atomically."""
    names = list(folds)
    tables = [t for n in names for t in PROJECTIONS[n].tables]
    async with conn.transaction():
        for name in sorted(names):
            await checkpoints.lock(conn, name)
        await conn.execute(f"TRUNCATE {', '.join(tables)}")
        for name in names:
            await folds[name].copy(conn)
            await checkpoints.write(conn, name, last)


async def rebuild(nc: NATS, database_url: str, name: str | None = None,
                  show_progress: bool = True) -> RebuildReport:
    """Rebuild `name` and its dependents (every projection when None)."""
    wanted = rebuild_set(name)
    started = time.perf_counter()
    total = 0
    by_stream: dict[str, list[str]] = {}
    for n in wanted:
        by_stream.setdefault(str(PROJECTIONS[n].stream), []).append(n)
    conn = await asyncpg.connect(database_url)
    try:
        with _progress(show_progress) as progress:
            for stream, names in by_stream.items():
                js = nc.jetstream()
                expected = int((await js.stream_info(stream)).state.messages or 0)
                task = progress.add_task(f"{stream} → {', '.join(names)}", total=expected)

                def advance(n: int, task: TaskID = task) -> None:
                    progress.update(task, completed=n)

                folds, events, last = await replay(nc, names, advance)
                await write(conn, folds, last)
                total += events
    finally:
        await conn.close()
    return RebuildReport(projections=wanted, events=total,
                         seconds=time.perf_counter() - started)


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("events"), TaskProgressColumn(),
        RateColumn(), TimeRemainingColumn(), disable=not show, transient=False)


class RateColumn(ProgressColumn):
    """Events per second; rich's own speed column counts bytes."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} ev/s" if speed else "- ev/s", style="progress.data.speed")
