"""The snapshots' statements are served by their indexes, under custom and generic plans alike
(see tests/dal/test_plans.py): many users' snapshots, a tenth linked to a conversation and a
tenth to a task, ANALYZEd, so a sequential scan would be chosen if it could."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain, walk

USERS, SNAPSHOTS_PER_USER = 3, 20000
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
FIRST = (datetime.max.replace(tzinfo=UTC), UUID(int=0))


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users with a conversation, a task and SNAPSHOTS_PER_USER snapshots each (every
    tenth linked to the conversation, another tenth to the task, every two-thousandth named
    with a rare word), ANALYZEd."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO conversations (id, user_id, title)
            SELECT gen_random_uuid(), u.id, 'c' FROM users AS u;
            INSERT INTO tasks (id, user_id, kind, title)
            SELECT gen_random_uuid(), u.id, 'research', 't' FROM users AS u;
            INSERT INTO workspace_snapshots (id, user_id, name, panels, origin, conversation_id,
                                             task_id, created_at)
            SELECT gen_random_uuid(), c.user_id,
                   CASE WHEN s % 2000 = 0 THEN 'needle ' ELSE 'snapshot ' END || s,
                   jsonb_build_array(
                       jsonb_build_object('query', 'revenue by region ' || md5(s::text))),
                   'auto', CASE WHEN s % 10 = 0 THEN c.id END,
                   CASE WHEN s % 10 = 5 THEN t.id END,
                   now() - make_interval(mins => s)
              FROM conversations AS c
              JOIN tasks AS t ON t.user_id = c.user_id,
                   generate_series(1, {SNAPSHOTS_PER_USER}) AS s;
            """
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A plain connection on the seeded database, and one user's (user_id, conversation id,
    task_id)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    row = await conn.fetchrow(
        "SELECT c.id, c.user_id, t.id AS task_id"
        "  FROM conversations AS c JOIN tasks AS t ON t.user_id = c.user_id"
        " ORDER BY c.id LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row
    finally:
        await conn.close()


def _kinds(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Node Type"] for n in nodes}


@GENERIC
async def test_a_page_is_read_in_the_order_of_the_users_index(seeded: Any, generic: bool) -> None:
    """The keyset is an index condition and the index gives the order: no sort."""
    conn, row = seeded
    nodes = await explain(conn, Q["list_snapshots"], row["user_id"], *FIRST, 51, generic=generic)
    assert_index_scan(nodes, "workspace_snapshots_user_created_idx", "workspace_snapshots")
    assert "Sort" not in _kinds(nodes)


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    assert not any(n.get("Node Type") == "Seq Scan" for n in nodes), nodes
    return {n["Index Name"] for n in nodes if "Index Name" in n}


async def test_a_search_for_a_rare_pattern_reads_the_trigram_index(seeded: Any) -> None:
    """A custom plan (the first executions of a prepared statement, and whenever PostgreSQL
    finds them cheaper) reads the trigram index for a pattern few snapshots hold."""
    conn, row = seeded
    for q in ("needle", "NEEDLE 4"):
        nodes = await explain(
            conn, Q["list_snapshots_matching"], row["user_id"], q, *FIRST, 51, generic=False
        )
        assert_index_scan(nodes, "workspace_snapshots_search_idx", "workspace_snapshots")


@GENERIC
@pytest.mark.parametrize("q", ["needle", "by regio", "n"])
async def test_a_search_reads_only_the_users_rows(seeded: Any, generic: bool, q: str) -> None:
    """Whatever the pattern and the plan, a search reads one user's rows by an index: the
    trigram index, or the user's index newest first, which stops at the page for a common
    pattern (and reads the user's snapshots, no one else's, for a rare one under a generic
    plan, which cannot know the pattern)."""
    conn, row = seeded
    nodes = await explain(
        conn, Q["list_snapshots_matching"], row["user_id"], q, *FIRST, 51, generic=generic
    )
    assert _indexes(nodes) & {
        "workspace_snapshots_search_idx",
        "workspace_snapshots_user_created_idx",
    }, nodes


@GENERIC
async def test_a_conversations_snapshots_are_read_by_an_index(seeded: Any, generic: bool) -> None:
    """Unfiltered, by the conversation's index; with a pattern, by it or by the trigram index."""
    conn, row = seeded
    for q in (None, "needle"):
        nodes = await explain(
            conn,
            Q["list_snapshots_of_conversation"],
            row["user_id"],
            row["id"],
            q,
            *FIRST,
            51,
            generic=generic,
        )
        used = _indexes(nodes)
        if q is None:
            assert "workspace_snapshots_conversation_idx" in used, nodes
        else:
            assert used & {
                "workspace_snapshots_conversation_idx",
                "workspace_snapshots_search_idx",
            }, nodes


@GENERIC
async def test_a_tasks_snapshots_are_read_by_its_index(seeded: Any, generic: bool) -> None:
    """Unfiltered, by the task's index; of a conversation too, by either link's index (the
    planner picks by the seeded data's statistics); with a pattern, by the task's or the
    trigram index (as a conversation's)."""
    conn, row = seeded
    for conversation_id, q in ((None, None), (None, "needle"), (row["id"], None)):
        nodes = await explain(
            conn,
            Q["list_snapshots_of_task"],
            row["user_id"],
            row["task_id"],
            conversation_id,
            q,
            *FIRST,
            51,
            generic=generic,
        )
        used = _indexes(nodes)
        if conversation_id is not None:  # either link's index narrows it to a few rows
            assert used & {
                "workspace_snapshots_task_idx",
                "workspace_snapshots_conversation_idx",
            }, nodes
        elif q is None:
            assert "workspace_snapshots_task_idx" in used, nodes
        else:
            assert used & {"workspace_snapshots_task_idx", "workspace_snapshots_search_idx"}, nodes


@GENERIC
@pytest.mark.parametrize("name", ["get_snapshot", "delete_snapshot"])
async def test_one_snapshot_is_found_by_its_key(seeded: Any, generic: bool, name: str) -> None:
    conn, row = seeded
    snapshot = await conn.fetchval("SELECT id FROM workspace_snapshots LIMIT 1")
    nodes = await explain(conn, Q[name], row["user_id"], snapshot, generic=generic)
    assert_index_scan(nodes, "workspace_snapshots_pkey", "workspace_snapshots")


@GENERIC
@pytest.mark.parametrize(
    ("column", "key", "index"),
    [
        ("conversation_id", "id", "workspace_snapshots_conversation_idx"),
        ("task_id", "task_id", "workspace_snapshots_task_idx"),
    ],
    ids=["conversation", "task"],
)
async def test_deleting_a_conversation_or_task_unlinks_its_snapshots_by_index(
    seeded: Any, generic: bool, column: str, key: str, index: str
) -> None:
    """The foreign key's ON DELETE SET NULL runs this statement per deleted conversation (or
    task), as PostgreSQL's referential integrity code writes it: it finds the snapshots by
    index."""
    conn, row = seeded
    sql = (
        f'UPDATE ONLY "public"."workspace_snapshots" SET "{column}" = NULL'
        f' WHERE $1 OPERATOR(pg_catalog.=) "{column}"'
    )
    if generic:
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE unlink_probe (uuid) AS {sql}")
            try:
                raw = await conn.fetchval(
                    f"EXPLAIN (FORMAT JSON) EXECUTE unlink_probe ('{row[key]}')"
                )
            finally:
                await conn.execute("DEALLOCATE unlink_probe")
    else:
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, row[key])
    nodes = list(walk(json.loads(raw)))
    assert_index_scan(nodes, index, "workspace_snapshots")
