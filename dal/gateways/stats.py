"""Storage stats (queries/stats.sql): read-only statements over the catalog and the tables."""

from __future__ import annotations

from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.queries import Q
from dal.records.stats import OldestData, TableStats, ThreadStats, UserStats

# Tables a list of stats names at most (the schema has a few dozen).
MAX_TABLES = 1000


async def update_stats_timeout(db: Executor, *, seconds: float) -> None:
    """The statement_timeout of the rest of the caller's transaction."""
    await fetch_value(db, Q["update_stats_timeout"], str(max(1, int(seconds * 1000))))


async def list_stats_tables(db: Executor, *, exact_below: int) -> list[TableStats]:
    """Every table, biggest first; rows counted exactly under ``exact_below`` estimated."""
    rows = await fetch_all(db, Q["list_stats_tables"], exact_below, MAX_TABLES)
    return TableStats.from_rows(rows)


async def list_stats_users(db: Executor, *, limit: int) -> list[UserStats]:
    """The ``limit`` users holding the most messages plus checkpoints."""
    return UserStats.from_rows(await fetch_all(db, Q["list_stats_users"], limit))


async def list_stats_threads(db: Executor, *, limit: int) -> list[ThreadStats]:
    """The ``limit`` threads with the most checkpoints."""
    return ThreadStats.from_rows(await fetch_all(db, Q["list_stats_threads"], limit))


async def get_stats_oldest(db: Executor) -> OldestData:
    """The oldest data of each kind."""
    row = await fetch_one(db, Q["get_stats_oldest"])
    assert row is not None  # an aggregate always returns its row
    return OldestData.from_row(row)
