"""The event logs' statements are served by their keys, under custom and generic plans alike
(see tests/dal/test_plans.py): many conversations' and tasks' logs, ANALYZEd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain

USERS, CONVERSATIONS, EVENTS = 20, 200, 20
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users with CONVERSATIONS conversations and as many tasks each, every log EVENTS
    events long (written as the appends write them: the head moved with the rows)."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO conversations (id, user_id, title, last_event_seq)
            SELECT gen_random_uuid(), u.id, 'c' || i, {EVENTS}
              FROM users AS u, generate_series(1, {CONVERSATIONS}) AS i;
            INSERT INTO conversation_events (conversation_id, seq, type, payload)
            SELECT c.id, s, 'panel', jsonb_build_object('n', s)
              FROM conversations AS c, generate_series(1, {EVENTS}) AS s;
            INSERT INTO tasks (id, user_id, kind, title)
            SELECT gen_random_uuid(), c.user_id, 'k', c.title FROM conversations AS c;
            UPDATE tasks SET last_event_seq = {EVENTS};
            INSERT INTO task_events (task_id, seq, type, payload)
            SELECT t.id, s, 'step', '{{}}'
              FROM tasks AS t, generate_series(2, {EVENTS}) AS s;
            ANALYZE;
            """
        )
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A plain connection on the seeded database, and a user's conversation and task."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    row = await conn.fetchrow(
        "SELECT c.user_id, c.id AS conversation_id, t.id AS task_id"
        "  FROM conversations AS c JOIN tasks AS t ON t.title = c.title AND t.user_id = c.user_id"
        " LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row
    finally:
        await conn.close()


def _indexes(nodes: list[dict[str, Any]], table: str) -> set[str]:
    assert not any(
        n.get("Node Type") == "Seq Scan" and n.get("Relation Name") == table for n in nodes
    ), nodes
    return {n["Index Name"] for n in nodes if n.get("Relation Name") == table and "Index Name" in n}


def assert_member_found(nodes: list[dict[str, Any]]) -> None:
    """The caller's membership, by any of the indexes that find the (conversation, user) pair
    at once: the key, the members' (conversation first) or the user's (user_id,
    conversation_id, with the role); the planner picks by the seeded statistics and the
    server's version."""
    used = _indexes(nodes, "conversation_members")
    assert used & {
        "conversation_members_pkey",
        "conversation_members_joined_idx",
        "conversation_members_user_idx",
    }, nodes


def assert_task_found(nodes: list[dict[str, Any]]) -> None:
    """The task, by its key or by its owner's (user_id, id) index: either finds the one row."""
    assert _indexes(nodes, "tasks") & {"tasks_pkey", "tasks_user_idx"}, nodes


@GENERIC
async def test_a_members_page_of_a_conversations_log_reads_its_key(
    seeded: Any, generic: bool
) -> None:
    conn, row = seeded
    nodes = await explain(
        conn,
        Q["list_conversation_events"],
        row["user_id"],
        row["conversation_id"],
        50,
        100,
        generic=generic,
    )
    assert_index_scan(nodes, "conversation_events_pkey", "conversation_events")
    assert_member_found(nodes)


@GENERIC
async def test_an_owners_page_of_a_tasks_log_reads_its_key(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    nodes = await explain(
        conn, Q["list_task_events"], row["user_id"], row["task_id"], 50, 100, generic=generic
    )
    assert_index_scan(nodes, "task_events_pkey", "task_events")
    assert_task_found(nodes)


@GENERIC
@pytest.mark.parametrize(
    ("name", "key", "index", "table"),
    [
        (
            "list_events_of_conversation",
            "conversation_id",
            "conversation_events_pkey",
            "conversation_events",
        ),
        ("list_events_of_task", "task_id", "task_events_pkey", "task_events"),
    ],
)
async def test_the_fan_outs_read_of_a_log_reads_its_key(
    seeded: Any, generic: bool, name: str, key: str, index: str, table: str
) -> None:
    conn, row = seeded
    nodes = await explain(conn, Q[name], row[key], 50, 1000, generic=generic)
    assert_index_scan(nodes, index, table)


@GENERIC
async def test_appends_find_their_log_by_its_key(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    # (a plain connection has no JSON codec: payloads as JSON text)
    types, payloads = ("{plan}", '{"{}"}') if generic else (["plan"], ["{}"])
    nodes = await explain(
        conn,
        Q["append_conversation_events"],
        row["user_id"],
        row["conversation_id"],
        types,
        payloads,
        generic=generic,
    )
    assert_index_scan(nodes, "conversations_pkey", "conversations")
    assert_member_found(nodes)
    nodes = await explain(
        conn,
        Q["append_task_events"],
        row["user_id"],
        row["task_id"],
        types,
        payloads,
        generic=generic,
    )
    assert_task_found(nodes)
