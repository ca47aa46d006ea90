"""The tasks' statements are served by their indexes, under custom and generic plans alike
(see tests/dal/test_plans.py): many users' tasks, most of them finished, a few pending of
several kinds and a few running, ANALYZEd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_foreign_key_plans import nested_plans
from tests.dal.test_plans import assert_index_scan, explain

USERS, TASKS_PER_USER = 20, 1000
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
LAST = "ffffffff-ffff-ffff-ffff-ffffffffffff"


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users with TASKS_PER_USER tasks each, of 5 kinds, each linked to a conversation of
    its user: 90% succeeded, 3% running, the rest pending (along legal transitions)."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO conversations (id, user_id, title)
            SELECT gen_random_uuid(), u.id, 'c' || i
              FROM users AS u, generate_series(1, 10) AS i;
            INSERT INTO tasks (id, user_id, kind, title, priority, conversation_id)
            SELECT gen_random_uuid(), c.user_id, 'k' || (i % 5), 't' || i, i % 7, c.id
              FROM conversations AS c, generate_series(1, {TASKS_PER_USER // 10}) AS i;
            UPDATE tasks SET status = 'running', worker = 'w',
                             lease_until = now() + interval '1 minute'
             WHERE (hashtext(id::text) & 1023) < 952;
            UPDATE tasks SET status = 'succeeded'
             WHERE status = 'running' AND (hashtext(id::text) & 1023) < 921;
            ANALYZE;
            """
        )
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A plain connection on the seeded database, and a task's row."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    row = await conn.fetchrow(
        "SELECT id, user_id, conversation_id FROM tasks WHERE status = 'pending' LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row
    finally:
        await conn.close()


def _kinds(generic: bool) -> Any:
    return "{k1,k3}" if generic else ["k1", "k3"]


@GENERIC
@pytest.mark.parametrize("name", ["get_task", "cancel_task"])
async def test_one_task_by_its_key(seeded: Any, generic: bool, name: str) -> None:
    conn, row = seeded
    nodes = await explain(conn, Q[name], row["user_id"], row["id"], generic=generic)
    assert_index_scan(nodes, "tasks_pkey", "tasks")


@GENERIC
@pytest.mark.parametrize(
    "name", ["heartbeat_task", "complete_task", "complete_tasks", "fail_task", "release_task"]
)
async def test_a_workers_report_finds_its_task_by_key(
    seeded: Any, generic: bool, name: str
) -> None:
    conn, row = seeded
    args: tuple[Any, ...] = {
        "heartbeat_task": (row["id"], "w", 30.0),
        "complete_task": (row["id"], "w", None),
        "complete_tasks": (
            (f"{{{row['id']}}}", "w", "{null}") if generic else ([row["id"]], "w", [None])
        ),
        "fail_task": (row["id"], "w", None, True, 1.0, 60.0),
        "release_task": (row["id"], "w"),
    }[name]
    nodes = await explain(conn, Q[name], *args, generic=generic)
    assert_index_scan(nodes, "tasks_pkey", "tasks")


@GENERIC
@pytest.mark.parametrize("kind", [None, "k1"])
async def test_a_users_list_reads_its_index(seeded: Any, generic: bool, kind: Any) -> None:
    conn, row = seeded
    nodes = await explain(conn, Q["list_tasks"], row["user_id"], LAST, kind, 51, generic=generic)
    assert_index_scan(nodes, "tasks_user_idx", "tasks")
    assert not any(n.get("Node Type") == "Sort" for n in nodes)


@GENERIC
@pytest.mark.parametrize("status", ["pending", "running"])
async def test_a_users_list_by_status_reads_only_that_status(
    seeded: Any, generic: bool, status: str
) -> None:
    conn, row = seeded
    nodes = await explain(
        conn, Q["list_tasks_by_status"], row["user_id"], LAST, status, None, 51, generic=generic
    )
    # (With a few rows of that status the planner may sort them rather than walk the index
    # backwards: either way only that status's rows are read.)
    assert_index_scan(nodes, "tasks_user_status_idx", "tasks")


@GENERIC
async def test_a_conversations_tasks_read_its_index(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    args = (row["user_id"], LAST, row["conversation_id"], None, None, 51)
    nodes = await explain(conn, Q["list_tasks_of_conversation"], *args, generic=generic)
    assert_index_scan(nodes, "tasks_conversation_idx", "tasks")


@GENERIC
@pytest.mark.parametrize(
    ("name", "filters", "index"),
    [
        ("list_tasks_by_priority", ("k1",), "tasks_user_idx"),
        ("list_tasks_by_status_by_priority", ("pending", None), "tasks_user_status_idx"),
        ("list_tasks_of_conversation_by_priority", (None, None), "tasks_conversation_idx"),
    ],
)
async def test_a_list_by_priority_reads_the_same_index_as_newest_first(
    seeded: Any, generic: bool, name: str, filters: tuple[Any, ...], index: str
) -> None:
    """By priority, a list reads the rows of the index its newest-first twin reads (the
    user's, of a status, of a conversation) and sorts them: no index has that order, and none
    is wanted (see queries/tasks.sql)."""
    conn, row = seeded
    key = (row["conversation_id"],) if "conversation" in name else ()
    args = (row["user_id"], 1001, LAST, *key, *filters, 51)
    nodes = await explain(conn, Q[name], *args, generic=generic)
    assert_index_scan(nodes, index, "tasks")


@GENERIC
async def test_a_claim_reads_the_queue_and_the_leases_by_their_indexes(
    seeded: Any, generic: bool
) -> None:
    """The claim's pending tasks come from tasks_queue_idx, per kind, in queue order (no
    sort of every pending task); the expired leases from tasks_lease_idx."""
    conn, _ = seeded
    nodes = await explain(conn, Q["claim_tasks"], _kinds(generic), "w", 30.0, 10, generic=generic)
    assert_index_scan(nodes, "tasks_queue_idx", "tasks")
    assert_index_scan(nodes, "tasks_lease_idx", "tasks")
    queue = [n for n in nodes if n.get("Index Name") == "tasks_queue_idx"]
    assert all("k.kind" in n.get("Index Cond", "") for n in queue), queue


@GENERIC
async def test_an_idle_workers_wait_reads_the_queue_and_the_leases_by_their_indexes(
    seeded: Any, generic: bool
) -> None:
    """How long until work may come: the first pending tasks of each kind by tasks_queue_idx,
    the first lease of those kinds to expire by tasks_lease_idx; never every task."""
    conn, _ = seeded
    nodes = await explain(conn, Q["get_task_wait"], _kinds(generic), generic=generic)
    assert_index_scan(nodes, "tasks_queue_idx", "tasks")
    assert_index_scan(nodes, "tasks_lease_idx", "tasks")
    assert not any(n.get("Node Type") == "Seq Scan" for n in nodes)


@GENERIC
@pytest.mark.parametrize(
    ("table", "index"),
    [("conversations", "tasks_conversation_idx"), ("users", "tasks_user_idx")],
)
async def test_deletes_find_the_tasks_they_unlink_or_delete_by_index(
    seeded: Any, generic: bool, table: str, index: str
) -> None:
    """A conversation's deletion unlinks its tasks (ON DELETE SET NULL), a user's deletes
    theirs (CASCADE): each foreign key's own statement finds them by an index."""
    conn, row = seeded
    key = row["conversation_id"] if table == "conversations" else row["user_id"]
    key_column = "conversation_id" if table == "conversations" else "user_id"

    async def delete(c: Any) -> None:
        await c.execute(f"DELETE FROM {table} WHERE id = $1", key)

    undo = conn.transaction()
    await undo.start()
    try:
        plans = await nested_plans(conn, delete, generic=generic)
        # The foreign key's statement on tasks (a user's deletion also deletes their
        # conversations, whose own statement unlinks the same tasks by tasks_conversation_idx).
        [of_key] = [
            nodes
            for text, nodes in plans.items()
            if '"public"."tasks"' in text and f'"{key_column}"' in text
        ]
        assert_index_scan(of_key, index, "tasks")
        for text, nodes in plans.items():
            if '"public"."tasks"' in text:
                assert not any(
                    n.get("Node Type") == "Seq Scan" and n.get("Relation Name") == "tasks"
                    for n in nodes
                ), text
    finally:
        await undo.rollback()
