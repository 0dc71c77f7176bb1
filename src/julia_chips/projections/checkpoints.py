"""`projection_checkpoints`: the last stream sequence whose effect is committed, per projection.

Read and written only inside the transaction that writes the rows, under a per-projection
advisory lock, so the runner and a rebuild can never both move one projection.
"""

from __future__ import annotations

import zlib

import asyncpg

_SET = """INSERT INTO projection_checkpoints (name, last_seq, updated_at) VALUES ($1, $2, now())
    ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()"""


def lock_key(name: str) -> int:
    return zlib.crc32(f"projection:{name}".encode())


async def lock(conn: asyncpg.Connection, name: str) -> None:
    """Transaction-scoped: released at commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(name))


async def read(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> int:
    value = await conn.fetchval("SELECT last_seq FROM projection_checkpoints WHERE name = $1",
                                name)
    return int(value or 0)


async def read_all(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    rows = await conn.fetch("SELECT name, last_seq FROM projection_checkpoints")
    return {r["name"]: int(r["last_seq"]) for r in rows}


async def write(conn: asyncpg.Connection, name: str, last_seq: int) -> None:
    await conn.execute(_SET, name, last_seq)
