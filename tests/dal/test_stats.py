"""Storage stats (dal.usecases.stats, queries/stats.sql) on the erasure tests' data set: each
number checked against the tables themselves."""

from __future__ import annotations

from typing import Any

import pytest

from dal.records.retention import RetentionPolicy
from dal.usecases import stats
from tests.dal.test_erasure import populate


async def test_the_stats_agree_with_the_tables(pool: Any) -> None:
    await populate(pool)
    answer = await stats.get_stats(pool, top=2)
    tables = {t.table_name: t for t in answer.tables}
    for name in ("users", "messages", "conversations", "checkpoints", "conversation_events"):
        assert tables[name].rows_exact
        assert tables[name].rows == await pool.fetchval(f"SELECT count(*) FROM {name}"), name
        assert tables[name].total_bytes == (
            tables[name].table_bytes + tables[name].toast_bytes + tables[name].index_bytes
        )
        assert tables[name].total_bytes == await pool.fetchval(
            "SELECT pg_total_relation_size($1::regclass)", name
        )
    assert [t.total_bytes for t in answer.tables] == sorted(
        (t.total_bytes for t in answer.tables), reverse=True
    )
    assert len(answer.users) == 2 and len(answer.threads) == 2
    for user in answer.users:
        expected = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM conversations WHERE user_id = $1) AS conversations, "
            "(SELECT count(*) FROM messages WHERE user_id = $1) AS messages, "
            "(SELECT count(*) FROM checkpoints WHERE owner = $1) AS checkpoints",
            user.user_id,
        )
        assert (user.conversations, user.messages, user.checkpoints) == tuple(expected)
    oldest = await pool.fetchrow(
        "SELECT (SELECT min(created_at) FROM checkpoints) AS c, "
        "(SELECT min(created_at) FROM messages) AS m, "
        "(SELECT min(updated_at) FROM threads) AS t"
    )
    assert answer.oldest.oldest_checkpoint_at == oldest["c"]
    assert answer.oldest.oldest_message_at == oldest["m"]
    assert answer.oldest.stalest_thread_at == oldest["t"]
    assert answer.retention.policy == {
        "thread_days": None,
        "keep_checkpoints": None,
        "conversation_days": None,
        "overrides": True,
    }


async def test_the_biggest_user_comes_first_and_top_is_bounded(pool: Any) -> None:
    world = await populate(pool)
    answer = await stats.get_stats(pool, top=1)
    # The bystander owns four conversations, the victim one.
    assert [u.user_id for u in answer.users] == [world.bystander.id]
    for top in (0, stats.MAX_TOP + 1):
        with pytest.raises(ValueError):
            await stats.get_stats(pool, top=top)


async def test_the_retention_dry_run_counts_and_deletes_nothing(pool: Any) -> None:
    await populate(pool)
    answer = await stats.get_stats(
        pool, policy=RetentionPolicy(keep_checkpoints=2), would_delete=True
    )
    # Three threads of five checkpoints, two kept of each.
    assert answer.retention.checkpoints == 9
    assert await pool.fetchval("SELECT count(*) FROM checkpoints") == 15


async def session_exercise(pool: Any, settings: Any, run: Any) -> None:
    await run.one(
        "get_stats",
        lambda: stats.get_stats(pool, top=2, policy=RetentionPolicy(keep_checkpoints=1)),
    )
