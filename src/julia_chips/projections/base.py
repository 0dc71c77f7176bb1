"""What every projection offers the runner and the rebuild: a fold over stored events.

A projection folds a batch of events in memory (`Fold`), then writes the result either as an
incremental upsert inside the runner's transaction or, on a rebuild, as one bulk COPY into
emptied tables. Both paths share the fold, which is why a rebuild equals the incremental
tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import Stream


class Envelope(msgspec.Struct, frozen=True):
    seq: int  # stream sequence
    event: Any  # a decoded event, or None when it could not be decoded (skipped, kept in stream)


class Fold(Protocol):
    """In-memory result of a batch; starts from the affected rows as stored."""

    def feed(self, item: Envelope) -> None: ...

    async def upsert(self, conn: asyncpg.Connection) -> None:
        """Write changed rows; runs inside the runner's transaction."""

    async def copy(self, conn: asyncpg.Connection) -> None:
        """Bulk-write everything into emptied tables (rebuild)."""


class Projection(Protocol):
    name: str  # also the checkpoint name
    stream: Stream
    subjects: str  # consumer filter: the whole stream, so sequences have no gaps
    tables: tuple[str, ...]  # emptied by a rebuild, dependents last
    after: str | None  # a projection whose rows ours reference: it must be ahead of us

    def decode(self, msg: Msg) -> Any:
        """The event stored in `msg`; None (or an error) for one to skip. The whole message,
        not only its body: a chip event must also belong to its subject's chip."""

    async def begin(self, conn: asyncpg.Connection, batch: Sequence[Envelope]) -> Fold:
        """A fold primed with the stored rows the batch touches."""

    async def empty(self, js: JetStreamContext) -> Fold:
        """A fold with no stored rows (rebuild), primed with whatever it needs from another
        stream to read old history (`julia_chips`: the numbers activations bought)."""
