"""The hot paths are served by their indexes, under custom and generic plans alike.

asyncpg reuses prepared statements, and after a few executions PostgreSQL may switch to a
generic plan; that is the one that can ignore an index, so both are checked. Data: a few
thousand rows, ANALYZEd, so the planner would pick a sequential scan if it could.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q, Query

USERS, CONVERSATIONS_PER_USER, MESSAGES_PER_CONVERSATION = 10, 500, 1000


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """The module's database, seeded once (the tests only read it: EXPLAIN, EXPLAIN ANALYZE of
    reads): users, their conversations, a few busy conversations, ANALYZEd."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO conversations (id, user_id, title, updated_at)
            SELECT gen_random_uuid(), u.id, 'c' || i, now() - make_interval(secs => i)
              FROM users AS u, generate_series(1, {CONVERSATIONS_PER_USER}) AS i;
            """
        )
        busy = conn.execute("SELECT id FROM conversations ORDER BY id LIMIT 5").fetchall()
        for (conversation_id,) in busy:
            conn.execute(
                f"""
                INSERT INTO messages (conversation_id, seq, id, role, parts, content,
                                      parts_bytes, parts_count, metadata_bytes)
                SELECT %s, s, gen_random_uuid(), 'user', '[{{"type": "text", "text": "x"}}]',
                       'x', 29, 1, 2
                  FROM generate_series(1, {MESSAGES_PER_CONVERSATION}) AS s
                """,
                [conversation_id],
            )
            conn.execute(
                f"UPDATE conversations SET last_seq = {MESSAGES_PER_CONVERSATION}, "
                f"message_count = {MESSAGES_PER_CONVERSATION} WHERE id = %s",
                [conversation_id],
            )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any, Any]]:
    """A plain connection of the test's own (no json codec: EXPLAIN output stays text) on the
    module's seeded database; the user and id of its first busy conversation."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    busy = await conn.fetchrow("SELECT id, user_id FROM conversations ORDER BY id LIMIT 1")
    assert busy is not None
    try:
        yield conn, busy["user_id"], busy["id"]
    finally:
        await conn.close()


def walk(plan: Any) -> Iterator[dict[str, Any]]:
    if isinstance(plan, dict):
        yield plan
        for child in plan.get("Plans", []):
            yield from walk(child)
    elif isinstance(plan, list):
        for item in plan:
            yield from walk(item.get("Plan", item))


async def explain(
    conn: asyncpg.Connection[Any], query: Query, *args: Any, generic: bool
) -> list[dict[str, Any]]:
    """The plan nodes of ``query``; with ``generic``, the generic plan of a prepared statement."""
    if not generic:
        return list(
            walk(json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + query.sql, *args)))
        )
    types = ", ".join(p.pg_type for p in query.params)
    # EXECUTE takes no bind parameters: pass literals, typed by the PREPARE.
    literals = ", ".join(
        "NULL" if a is None else "'" + str(a).replace("'", "''") + "'" for a in args
    )
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE plan_probe ({types}) AS {query.sql.rstrip(';')}")
        try:
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE plan_probe ({literals})")
        finally:
            await conn.execute("DEALLOCATE plan_probe")
    return list(walk(json.loads(raw)))


def assert_index_scan(nodes: list[dict[str, Any]], index: str, table: str) -> None:
    scans = {(n.get("Node Type"), n.get("Relation Name"), n.get("Index Name")) for n in nodes}
    assert any(name == index for _, _, name in scans), scans
    assert not any(kind == "Seq Scan" and rel == table for kind, rel, _ in scans), scans


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("list_messages_latest", (51, 4 << 20)),
        ("list_messages_before", (500, 51, 4 << 20)),
        ("list_messages_after", (500, 51, 4 << 20)),
    ],
)
async def test_message_page_uses_the_active_branch_index(
    seeded: Any, name: str, extra: tuple[int, ...], generic: bool
) -> None:
    conn, user_id, conversation_id = seeded
    nodes = await explain(conn, Q[name], user_id, conversation_id, *extra, generic=generic)
    # messages_active_idx: the active branch's messages by seq (README "Branches")
    assert_index_scan(nodes, "messages_active_idx", "messages")
    assert "messages_active_idx" in Q[name].uses


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_conversation_list_uses_user_updated_index_without_sort(
    seeded: Any, generic: bool
) -> None:
    conn, user_id, _ = seeded
    first = await explain(conn, Q["list_conversations"], user_id, 51, 4 << 20, generic=generic)
    cursor = await conn.fetchrow(
        "SELECT updated_at, id FROM conversations WHERE user_id = $1 ORDER BY updated_at DESC, "
        "id DESC OFFSET 20 LIMIT 1",
        user_id,
    )
    after = await explain(
        conn,
        Q["list_conversations_before"],
        user_id,
        cursor["updated_at"],
        cursor["id"],
        51,
        4 << 20,
        generic=generic,
    )
    for nodes in (first, after):
        assert_index_scan(nodes, "conversations_user_updated_idx", "conversations")
        # The index order is the requested order: no sort of the user's own conversations.
        # Sorts merge two bounded pages (owned, and shared with the caller as a member), or
        # order the conversations shared with the caller (read by their memberships).
        for node in nodes:
            if node["Node Type"] in ("Sort", "Incremental Sort"):
                (child,) = node["Plans"]
                if child["Node Type"] == "Append":
                    assert [c["Node Type"] for c in child["Plans"]] == ["Limit", "Limit"], nodes
                else:
                    read = {n.get("Index Name") for n in walk(child)}
                    assert "conversation_members_user_idx" in read, nodes
                    assert "conversations_user_updated_idx" not in read, nodes


async def test_keyset_cursor_is_an_index_condition_not_a_filter(seeded: Any) -> None:
    conn, user_id, _ = seeded
    cursor = await conn.fetchrow(
        "SELECT updated_at, id FROM conversations WHERE user_id = $1 ORDER BY updated_at DESC, "
        "id DESC OFFSET 50 LIMIT 1",
        user_id,
    )
    nodes = await explain(
        conn,
        Q["list_conversations_before"],
        user_id,
        cursor["updated_at"],
        cursor["id"],
        11,
        4 << 20,
        generic=True,
    )
    scan = next(n for n in nodes if n.get("Index Name") == "conversations_user_updated_idx")
    assert "updated_at" in scan["Index Cond"] and "Filter" not in scan


@pytest.mark.parametrize(
    "name", ["get_message", "update_message", "insert_message", "delete_message"]
)
async def test_message_by_id_uses_its_unique_index(seeded: Any, name: str) -> None:
    conn, user_id, conversation_id = seeded
    message_id = await conn.fetchval(
        "SELECT id FROM messages WHERE conversation_id = $1 AND seq = 7", conversation_id
    )
    args: dict[str, tuple[Any, ...]] = {
        "get_message": (user_id, conversation_id, message_id),
        "update_message": (
            *(user_id, conversation_id, message_id, None, '[{"a": 1}]', None, None),
            *(1 << 20, 9, 300.0, "{}"),
        ),
        "insert_message": (
            *(user_id, conversation_id, message_id, "user", "[]", "{}", "complete"),
            *(1 << 20, 9, None, 900.0, 0, 0, "{}"),
        ),
        "delete_message": (user_id, conversation_id, message_id),
    }
    async with conn.transaction():  # EXPLAIN does not execute, but keep it harmless anyway
        nodes = await explain(conn, Q[name], *args[name], generic=True)
    assert_index_scan(nodes, "messages_conversation_id_id_key", "messages")


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("list_messages_latest", (51, 1000)),
        ("list_messages_before", (900, 51, 10**9)),
        ("list_messages_after", (100, 51, 10**9)),
    ],
)
async def test_message_page_reads_only_its_rows_however_it_ends(
    seeded: Any, name: str, extra: tuple[int, ...]
) -> None:
    """The running byte sum (a window over the index scan) does not make the scan read the
    whole conversation: it stops at the page size + 1 rows the LIMIT asks for."""
    conn, user_id, conversation_id = seeded
    raw = await conn.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + Q[name].sql, user_id, conversation_id, *extra
    )
    nodes = list(walk(json.loads(raw)))
    scan = next(n for n in nodes if n.get("Index Name") == "messages_active_idx")
    # The page's 51 rows and one the window reads ahead; never the 1000 of the conversation.
    assert scan["Actual Rows"] <= 52, scan


async def test_conversation_page_reads_only_its_rows_however_it_ends(seeded: Any) -> None:
    conn, user_id, _ = seeded
    for size in (1, 10**9):
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + Q["list_conversations"].sql, user_id, 51, size
        )
        nodes = list(walk(json.loads(raw)))
        scan = next(n for n in nodes if n.get("Index Name") == "conversations_user_updated_idx")
        # The page's 51 rows and one the window reads ahead; never the user's 500.
        assert scan["Actual Rows"] <= 52, scan
