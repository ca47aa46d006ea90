"""The thread list is served by threads_user_updated_idx, under custom and generic plans
alike, in the index's order (no sort), the keyset cursor an index condition.

Data: a few thousand threads of ten users, ANALYZEd, so the planner would pick a sequential
scan if it could.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain

USERS, THREADS_PER_USER = 10, 500
INDEX = "threads_user_updated_idx"


SEED = f"""
    INSERT INTO users (id, username)
    SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
    INSERT INTO threads (thread_id, owner, user_id, updated_at)
    SELECT 'thread-' || u.username || '-' || i, u.id, u.id, now() - make_interval(secs => i)
      FROM users AS u, generate_series(1, {THREADS_PER_USER}) AS i;
    -- Threads no user owns (written by a saver without a user).
    INSERT INTO threads (thread_id, owner)
    SELECT 'anon-' || i, '00000000-0000-0000-0000-000000000000'
      FROM generate_series(1, 1000) AS i;
    -- Conversations, every other one naming a thread of its user.
    INSERT INTO conversations (id, user_id, thread_id)
    SELECT gen_random_uuid(), u.id,
           CASE WHEN i % 2 = 0 THEN 'thread-' || u.username || '-' || i END
      FROM users AS u, generate_series(1, {THREADS_PER_USER}) AS i;
    ANALYZE;
"""


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """The module's database, seeded once: the tests only read it."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(SEED.encode())  # several statements: the simple query protocol
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A plain connection (no json codec: EXPLAIN output stays text) on the seeded database,
    and a user's id."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    user_id = await conn.fetchval("SELECT id FROM users ORDER BY username LIMIT 1")
    try:
        yield conn, user_id
    finally:
        await conn.close()


async def _cursor(conn: asyncpg.Connection[Any], user_id: Any, offset: int) -> Any:
    return await conn.fetchrow(
        "SELECT updated_at, thread_id FROM threads WHERE user_id = $1 "
        "ORDER BY updated_at DESC, thread_id DESC OFFSET $2 LIMIT 1",
        user_id,
        offset,
    )


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_list_threads_uses_user_updated_index_without_sort(
    seeded: Any, generic: bool
) -> None:
    conn, user_id = seeded
    first = await explain(conn, Q["list_threads"], user_id, 51, generic=generic)
    cursor = await _cursor(conn, user_id, 20)
    after = await explain(
        conn,
        Q["list_threads_before"],
        user_id,
        cursor["updated_at"],
        cursor["thread_id"],
        51,
        generic=generic,
    )
    for nodes in (first, after):
        assert_index_scan(nodes, INDEX, "threads")
        # The index order is the requested order: no sort of the user's threads.
        assert not any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes), nodes
    assert INDEX in Q["list_threads"].uses and INDEX in Q["list_threads_before"].uses


async def test_list_threads_keyset_cursor_is_an_index_condition_not_a_filter(
    seeded: Any,
) -> None:
    conn, user_id = seeded
    cursor = await _cursor(conn, user_id, 50)
    nodes = await explain(
        conn,
        Q["list_threads_before"],
        user_id,
        cursor["updated_at"],
        cursor["thread_id"],
        11,
        generic=True,
    )
    scan = next(n for n in nodes if n.get("Index Name") == INDEX)
    assert "updated_at" in scan["Index Cond"] and "Filter" not in scan


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_thread_queries_find_the_conversation_naming_it_by_index(
    seeded: Any, generic: bool
) -> None:
    # A thread's conversation is looked up (conversations_user_thread_key), never scanned for:
    # in every query that includes the thread_row fragment (a new one needs a case here).
    conn, user_id = seeded
    cursor = await _cursor(conn, user_id, 20)
    cases = [
        ("get_thread", (user_id, "thread-u1-2")),
        ("get_thread_locked", (user_id, "thread-u1-2")),
        ("list_threads", (user_id, 51)),
        ("list_threads_before", (user_id, cursor["updated_at"], cursor["thread_id"], 51)),
    ]
    assert {name for name, _ in cases} == {n for n, q in Q.items() if "thread_row" in q.includes}
    for name, args in cases:
        async with conn.transaction():  # get_thread_locked's FOR NO KEY UPDATE
            nodes = await explain(conn, Q[name], *args, generic=generic)
        assert_index_scan(nodes, "conversations_user_thread_key", "conversations")
        assert "conversations_user_thread_key" in Q[name].uses, name
    row = await conn.fetchrow(Q["get_thread"].sql, user_id, "thread-u1-2")
    named = await conn.fetchval(
        "SELECT id FROM conversations WHERE user_id = $1 AND thread_id = 'thread-u1-2'", user_id
    )
    assert row["conversation_id"] == named is not None
