"""Storage stats (README "Storage stats"): the statements of dal.gateways.stats in one
read-only transaction under APP_STATS_TIMEOUT, and the retention policies' dry run."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from pydantic import JsonValue

from dal.database import translating
from dal.gateways import stats
from dal.records.stats import Stats

Pool: TypeAlias = "asyncpg.Pool[Any]"
# Most users and threads a list of stats may name.
MAX_TOP = 1000
# Tables whose estimated rows are under this are counted exactly.
EXACT_ROWS_BELOW = 100_000


async def get_stats(
    pool: Pool,
    *,
    top: int = 10,
    timeout: float = 10.0,
    exact_below: int = EXACT_ROWS_BELOW,
    retention: JsonValue = None,
) -> Stats:
    """The storage stats, each statement bounded by ``timeout`` seconds (Timeout past it) and
    each list by its size (``top`` users and threads, 1 to MAX_TOP). ``retention``: what the
    policies would delete now, as the caller computed it (their dry run)."""
    if not 1 <= top <= MAX_TOP:
        raise ValueError(f"top must be between 1 and {MAX_TOP}")
    with translating():
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await stats.update_stats_timeout(conn, seconds=timeout)
            tables = await stats.list_stats_tables(conn, exact_below=exact_below)
            users = await stats.list_stats_users(conn, limit=top)
            threads = await stats.list_stats_threads(conn, limit=top)
            oldest = await stats.get_stats_oldest(conn)
    return Stats(
        tables=tables,
        total_bytes=sum(t.total_bytes for t in tables),
        users=users,
        threads=threads,
        oldest=oldest,
        retention=retention,
        top=top,
        exact_rows_below=exact_below,
    )
