"""The branch queries are served by their indexes, under custom and generic plans alike
(see tests/dal/test_plans.py): a conversation of a few thousand messages on many branches,
among others, ANALYZEd."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain, walk

MESSAGES, BRANCH_EVERY = 4000, 40


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """Conversations with a member each; the first holds MESSAGES messages: a trunk, and
    every BRANCH_EVERY messages a branch of 5 forking from the trunk 3 messages back (the
    last one active)."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, 20) AS i;
            INSERT INTO conversations (id, user_id, title)
            SELECT gen_random_uuid(), u.id, 'c' || i
              FROM users AS u, generate_series(1, 50) AS i;
            INSERT INTO conversation_members (conversation_id, user_id, role)
            SELECT id, user_id, 'owner' FROM conversations ON CONFLICT DO NOTHING;
            """
        )
        conn.execute(
            f"""
            WITH c AS (SELECT id FROM conversations ORDER BY id LIMIT 1),
            shape AS (
                SELECT s AS seq,
                       CASE WHEN s % {BRANCH_EVERY} BETWEEN 1 AND 5 AND s > {BRANCH_EVERY}
                            THEN true ELSE false END AS on_branch
                  FROM generate_series(1, {MESSAGES}) AS s
            )
            INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                                  parts_count, metadata_bytes, parent_seq, active)
            SELECT c.id, sh.seq, gen_random_uuid(), 'user',
                   '[{{"type": "text", "text": "x"}}]', 'x', 29, 1, 2,
                   CASE WHEN sh.seq = 1 THEN NULL
                        WHEN sh.on_branch AND sh.seq % {BRANCH_EVERY} = 1 THEN sh.seq - 4
                        WHEN sh.on_branch THEN sh.seq - 1
                        WHEN (sh.seq - 1) % {BRANCH_EVERY} BETWEEN 1 AND 5
                             AND sh.seq > {BRANCH_EVERY} THEN sh.seq - 6
                        ELSE sh.seq - 1 END,
                   NOT sh.on_branch
              FROM c, shape AS sh
            """
        )
        conn.execute(
            f"UPDATE conversations SET last_seq = {MESSAGES}, message_count = {MESSAGES},"
            f" leaf_seq = {MESSAGES} WHERE id = (SELECT id FROM conversations ORDER BY id LIMIT 1)"
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any, Any]]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    busy = await conn.fetchrow("SELECT id, user_id FROM conversations ORDER BY id LIMIT 1")
    assert busy is not None
    try:
        yield conn, busy["user_id"], busy["id"]
    finally:
        await conn.close()


async def message_id(conn: asyncpg.Connection[Any], conversation_id: Any, seq: int) -> Any:
    return await conn.fetchval(
        "SELECT id FROM messages WHERE conversation_id = $1 AND seq = $2", conversation_id, seq
    )


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_branch_queries_use_their_indexes(seeded: Any, generic: bool) -> None:
    conn, user_id, conversation_id = seeded
    deep = await message_id(conn, conversation_id, 2 * BRANCH_EVERY + 3)  # on a branch
    leaf = await message_id(conn, conversation_id, MESSAGES)
    args = {
        "get_branch_lock": (user_id, conversation_id, deep, leaf),
        "update_active_leaf": (user_id, conversation_id, deep, True),
        "list_message_siblings": (user_id, conversation_id, deep, 0, 51),
        "list_branch_messages": (user_id, conversation_id, leaf, MESSAGES - 100, 51, 4 << 20),
    }
    for name, values in args.items():
        async with conn.transaction():  # EXPLAIN does not execute, but keep it harmless anyway
            nodes = await explain(conn, Q[name], *values, generic=generic)
        for index in Q[name].uses:
            if index.startswith("conversation"):
                continue  # tiny tables: the planner may scan them
            assert_index_scan(nodes, index, "messages")


async def test_switch_reads_the_two_segments_not_the_conversation(seeded: Any) -> None:
    """A switch near the end of a 4,000-message conversation reads a few dozen index entries:
    the new path up to the fork (5 messages), the old path's tail (38) by
    messages_active_idx; never the conversation's messages."""
    conn, user_id, conversation_id = seeded
    # The last message of the branch that forked from the trunk's seq 3957.
    target = await message_id(
        conn, conversation_id, (MESSAGES // BRANCH_EVERY - 1) * BRANCH_EVERY + 5
    )
    rollback = conn.transaction()
    await rollback.start()
    try:  # EXPLAIN ANALYZE runs the switch: undone after
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + Q["update_active_leaf"].sql,
            user_id,
            conversation_id,
            target,
            True,
        )
    finally:
        await rollback.rollback()
    nodes = list(walk(json.loads(raw)))
    read = {
        (n.get("Index Name") or n.get("Relation Name")): n["Actual Rows"] * n["Actual Loops"]
        for n in nodes
        if n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan", "Seq Scan")
        and (n.get("Relation Name") in (None, "messages"))
        and "messages" in (n.get("Index Name") or n.get("Relation Name") or "")
    }
    assert not any(n["Node Type"] == "Seq Scan" for n in nodes), read
    assert read["messages_active_idx"] == 5 + 38, read
    assert sum(read.values()) < 100, read
