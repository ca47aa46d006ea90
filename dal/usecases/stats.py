"""Storage stats (README "Storage stats"): the statements of dal.gateways.stats in one
read-only transaction under APP_STATS_TIMEOUT, and the retention policies' dry run
(dal.usecases.retention.run_retention with dry_run: its batches run and roll back)."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from dal.database import translating
from dal.gateways import stats
from dal.records.retention import RetentionPolicy
from dal.records.stats import RetentionPreview, Stats
from dal.usecases import retention as retention_usecase

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
    policy: RetentionPolicy | None = None,
    retention_batch: int = retention_usecase.DEFAULT_BATCH,
    retention_pause: float = retention_usecase.DEFAULT_PAUSE,
    would_delete: bool = False,
) -> Stats:
    """The storage stats, each statement bounded by ``timeout`` seconds (Timeout past it) and
    each list by its size (``top`` users and threads, 1 to MAX_TOP); with the retention
    ``policy`` (the settings' RETENTION_*), and with ``would_delete`` what it would delete now:
    its dry run, in batches of ``retention_batch`` resting ``retention_pause`` times as long
    as each took (each statement under the pool's DB_QUERY_TIMEOUT; as long as a retention
    run, whose locks it takes)."""
    if not 1 <= top <= MAX_TOP:
        raise ValueError(f"top must be between 1 and {MAX_TOP}")
    with translating():
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await stats.update_stats_timeout(conn, seconds=timeout)
            tables = await stats.list_stats_tables(conn, exact_below=exact_below)
            users = await stats.list_stats_users(conn, limit=top)
            threads = await stats.list_stats_threads(conn, limit=top)
            oldest = await stats.get_stats_oldest(conn)
    policy = policy or RetentionPolicy()
    kinds = ["threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes"]
    kinds += ["conversations", "messages"]
    nothing = 0 if not policy.enabled else None  # None: not asked for
    would: dict[str, int | None] = dict.fromkeys(kinds, nothing)
    if policy.enabled and would_delete:
        report = await retention_usecase.run_retention(
            pool, policy, batch=retention_batch, dry_run=True, pause=retention_pause
        )
        would = {kind: getattr(report, kind) for kind in would}
    return Stats(
        tables=tables,
        total_bytes=sum(t.total_bytes for t in tables),
        users=users,
        threads=threads,
        oldest=oldest,
        retention=RetentionPreview(policy=policy.model_dump(), **would),
        top=top,
        exact_rows_below=exact_below,
    )
