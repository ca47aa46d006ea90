"""Retention's statements (queries/retention.sql) are served by the indexes of their ``uses:``
lines, under custom and generic plans alike (see tests/dal/test_plans.py): many users' threads
with checkpoints, blobs and writes, and conversations, ANALYZEd, so a sequential scan would be
chosen if it could. A run walks the tables in batches: a statement that scanned a table would
cost a scan per batch."""

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
from tests.dal.test_plans import explain, walk

USERS, THREADS, CHECKPOINTS = 5000, 3000, 5
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
NIL = UUID(int=0)
EPOCH = datetime(1, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 6, tzinfo=UTC)
TABLES = {
    "threads_updated_idx": "threads",
    "threads_pkey": "threads",
    "users_pkey": "users",
    "checkpoints_pkey": "checkpoints",
    "checkpoint_blobs_pkey": "checkpoint_blobs",
    "checkpoint_writes_pkey": "checkpoint_writes",
    "conversations_updated_idx": "conversations",
    "conversations_pkey": "conversations",
}


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users, THREADS threads of theirs with CHECKPOINTS checkpoints each (a blob and a
    write each), a conversation per thread, ANALYZEd."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO threads (thread_id, owner, user_id, updated_at)
            SELECT 't' || i, u.id, u.id, now() - (i || ' minutes')::interval
              FROM generate_series(1, {THREADS}) AS i
              JOIN (SELECT id, row_number() OVER () AS n FROM users) AS u
                ON u.n = 1 + i % {USERS};
            INSERT INTO checkpoints (thread_id, owner, checkpoint_id, checkpoint)
            SELECT t.thread_id, t.owner, 'c' || j,
                   jsonb_build_object('channel_versions', jsonb_build_object('v', j::text))
              FROM threads AS t, generate_series(1, {CHECKPOINTS}) AS j;
            INSERT INTO checkpoint_blobs (thread_id, owner, channel, version, type, blob)
            SELECT thread_id, owner, 'v', substr(checkpoint_id, 2), 'bytes', '\\x00'
              FROM checkpoints;
            INSERT INTO checkpoint_writes (thread_id, owner, checkpoint_id, task_id, idx,
                                           channel, blob)
            SELECT thread_id, owner, checkpoint_id, 'task', 0, 'v', '\\x00' FROM checkpoints;
            INSERT INTO conversations (id, user_id, updated_at)
            SELECT gen_random_uuid(), owner, updated_at FROM threads;
            """
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def conn(seeded_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    try:
        yield conn
    finally:
        await conn.close()


def array(values: list[Any], generic: bool) -> Any:
    """A list for asyncpg; for the generic plan's EXECUTE, its array literal."""
    if not generic:
        return values
    return "{" + ",".join('"' + str(v) + '"' for v in values) + "}"


async def some_threads(conn: asyncpg.Connection[Any]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT thread_id, owner FROM threads ORDER BY thread_id LIMIT 3 OFFSET 100"
    )


async def arguments(conn: asyncpg.Connection[Any], name: str, generic: bool) -> tuple[Any, ...]:
    threads = await some_threads(conn)
    ids = array([t["thread_id"] for t in threads], generic)
    owners = array([t["owner"] for t in threads], generic)
    cutoffs = array([NOW] * len(threads), generic)
    conversations = await conn.fetch("SELECT id FROM conversations ORDER BY id LIMIT 3")
    return {
        "list_expired_threads_locked": (1, NOW, EPOCH, "", NIL, 100, True),
        "delete_expired_thread_rows": (ids, owners, cutoffs, 100),
        "delete_expired_threads": (ids, owners, cutoffs),
        "list_threads_for_trimming_locked": (5, 1, NOW, "t5", NIL, 100, True, True),
        "delete_excess_checkpoints": (ids, owners, array([2] * len(threads), generic), NOW, 100),
        "delete_trim_leftovers": (ids, owners, 100),
        "list_expired_conversations_locked": (1, NOW, EPOCH, NIL, 100, True),
        "delete_expired_conversations": (
            array([c["id"] for c in conversations], generic),
            array([NOW] * len(conversations), generic),
        ),
    }[name]


PLANNED = [
    "list_expired_threads_locked",
    "delete_expired_thread_rows",
    "delete_expired_threads",
    "list_threads_for_trimming_locked",
    "delete_excess_checkpoints",
    "delete_trim_leftovers",
    "list_expired_conversations_locked",
    "delete_expired_conversations",
]


def test_every_retention_query_that_names_an_index_is_planned_here() -> None:
    named = {q.name for q in Q.values() if q.source.startswith("queries/retention.sql") and q.uses}
    assert named == set(PLANNED)


@GENERIC
@pytest.mark.parametrize("name", PLANNED)
async def test_each_statement_uses_the_indexes_it_names_and_scans_no_table(
    conn: asyncpg.Connection[Any], name: str, generic: bool
) -> None:
    query = Q[name]
    nodes = await explain(conn, query, *await arguments(conn, name, generic), generic=generic)
    scans = {(n.get("Node Type"), n.get("Relation Name"), n.get("Index Name")) for n in nodes}
    used = {index for _, _, index in scans}
    for index in query.uses:
        assert index in used, (index, scans)
    seq = {rel for kind, rel, _ in scans if kind == "Seq Scan"}
    assert not seq & {TABLES[index] for index in query.uses}, scans


async def rows_visited(conn: asyncpg.Connection[Any], sql: str, *args: Any) -> int:
    """Every row each plan node of ``sql`` produced or filtered out, over all its loops (the
    statement runs: call it in a transaction that is rolled back)."""
    raw = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, *args)
    total = 0.0
    for node in walk(json.loads(raw)):
        per_loop = sum(
            node.get(key, 0)
            for key in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter")
        )
        total += per_loop * node.get("Actual Loops", 1)
    return int(total)


@pytest.mark.parametrize("size", [500, 2000])
async def test_trimming_a_thread_costs_in_proportion_to_its_size(
    conn: asyncpg.Connection[Any], size: int
) -> None:
    # A quadratic step (each deleted checkpoint's children looked for among all the thread's
    # checkpoints) made trimming one thread of 1,000 checkpoints take 0.2 s, its thread locked
    # all along: the rows the statements visit must stay within a small multiple of the size.
    thread = f"big{size}"
    tx = conn.transaction()  # rolled back: the module's data stays as the other tests plan it
    await tx.start()
    try:
        await conn.execute(
            """
            INSERT INTO threads (thread_id, owner) VALUES ($1, $2);
            INSERT INTO checkpoints (thread_id, owner, checkpoint_id, parent_checkpoint_id,
                                     checkpoint, created_at)
            SELECT $1, $2, lpad(j::text, 8, '0'),
                   CASE WHEN j > 1 THEN lpad((j - 1)::text, 8, '0') END,
                   jsonb_build_object('channel_versions', jsonb_build_object('v', j::text)),
                   now() - interval '1 day'
              FROM generate_series(1, $3::int) AS j;
            INSERT INTO checkpoint_blobs (thread_id, owner, channel, version, type, blob)
            SELECT $1, $2, 'v', j::text, 'bytes', '\\x00' FROM generate_series(1, $3::int) AS j;
            INSERT INTO checkpoint_writes (thread_id, owner, checkpoint_id, task_id, idx,
                                           channel, blob)
            SELECT $1, $2, lpad(j::text, 8, '0'), 'task', 0, 'v', '\\x00'
              FROM generate_series(1, $3::int) AS j;
            """.replace("$1", f"'{thread}'")
            .replace("$2", f"'{NIL}'")
            .replace("$3", str(size))
        )
        visited = await rows_visited(
            conn,
            Q["delete_excess_checkpoints"].sql,
            [thread],
            [NIL],
            [1],
            datetime.now(UTC),
            size,
        )
        visited += await rows_visited(conn, Q["delete_trim_leftovers"].sql, [thread], [NIL], size)
        left = await conn.fetch(
            "SELECT parent_checkpoint_id FROM checkpoints WHERE thread_id = $1", thread
        )
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM checkpoint_blobs WHERE thread_id = $1) AS blobs,
                      (SELECT count(*) FROM checkpoint_writes WHERE thread_id = $1) AS writes""",
            thread,
        )
    finally:
        await tx.rollback()
    assert [r["parent_checkpoint_id"] for r in left] == [None]  # the newest, now a root
    assert (counts["blobs"], counts["writes"]) == (1, 1)
    assert visited < 100 * size, visited  # ~34 per checkpoint here; quadratic: ~1,500 at 1,000
