"""Edits, retraction, deletion and the versions list are served by their indexes, under custom
and generic plans alike (see tests/dal/test_plans.py): conversations of many messages, many
of them edited, one edited many times, ANALYZEd."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain, walk

CONVERSATIONS, MESSAGES, VERSIONS_OF_EVERY, MANY_VERSIONS = 20, 500, 3, 400


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """CONVERSATIONS conversations of MESSAGES messages (their owner's), each message with
    VERSIONS_OF_EVERY earlier versions, and the first message of the first conversation with
    MANY_VERSIONS."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username) VALUES (gen_random_uuid(), 'owner');
            INSERT INTO conversations (id, user_id, title)
            SELECT gen_random_uuid(), u.id, 'c' || i
              FROM users AS u, generate_series(1, {CONVERSATIONS}) AS i;
            INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                                  parts_count, metadata_bytes, sender_id, version)
            SELECT c.id, s, gen_random_uuid(), 'user', '[{{"type": "text", "text": "x"}}]',
                   'x', 29, 1, 2, c.user_id, {VERSIONS_OF_EVERY + 1}
              FROM conversations AS c, generate_series(1, {MESSAGES}) AS s;
            INSERT INTO message_versions (conversation_id, seq, version, parts, metadata,
                                          edited_by)
            SELECT m.conversation_id, m.seq, v, '[{{"type": "text", "text": "old"}}]', '{{}}',
                   m.sender_id
              FROM messages AS m, generate_series(1, {VERSIONS_OF_EVERY}) AS v;
            """
        )
        conn.execute(
            f"""
            WITH first AS (
                SELECT conversation_id, seq, sender_id FROM messages ORDER BY conversation_id, seq
                 LIMIT 1
            )
            INSERT INTO message_versions (conversation_id, seq, version, parts, metadata,
                                          edited_by)
            SELECT f.conversation_id, f.seq, v, '[{{"type": "text", "text": "older"}}]', '{{}}',
                   f.sender_id
              FROM first AS f, generate_series({VERSIONS_OF_EVERY + 1}, {MANY_VERSIONS}) AS v
            """
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any, Any, Any]]:
    """A plain connection (no json codec) on the seeded database; the owner, the first
    conversation and its first message (the one of MANY_VERSIONS versions)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    row = await conn.fetchrow(
        "SELECT conversation_id, id, sender_id FROM messages ORDER BY conversation_id, seq LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row["sender_id"], row["conversation_id"], row["id"]
    finally:
        await conn.close()


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_versions_list_reads_the_message_and_its_versions_by_their_keys(
    seeded: Any, generic: bool
) -> None:
    conn, user_id, conversation_id, message_id = seeded
    for after in (0, 200):
        nodes = await explain(
            conn,
            Q["list_message_versions"],
            user_id,
            conversation_id,
            message_id,
            after,
            51,
            4 << 20,
            generic=generic,
        )
        assert_index_scan(nodes, "message_versions_pkey", "message_versions")
        assert_index_scan(nodes, "messages_conversation_id_id_key", "messages")
        scan = next(n for n in nodes if n.get("Index Name") == "message_versions_pkey")
        assert "version" in scan["Index Cond"], scan  # the cursor bounds the scan


async def test_versions_page_reads_only_its_rows_however_it_ends(seeded: Any) -> None:
    conn, user_id, conversation_id, message_id = seeded
    for max_bytes in (1, 10**9):
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + Q["list_message_versions"].sql,
            user_id,
            conversation_id,
            message_id,
            100,
            51,
            max_bytes,
        )
        nodes = list(walk(json.loads(raw)))
        scan = next(n for n in nodes if n.get("Index Name") == "message_versions_pkey")
        assert scan["Actual Rows"] <= 52, scan  # never the message's 400 versions


@pytest.mark.parametrize("name", ["update_message", "delete_own_message", "delete_message"])
async def test_edit_retract_and_delete_find_the_message_and_its_versions_by_key(
    seeded: Any, name: str
) -> None:
    conn, user_id, conversation_id, message_id = seeded
    ids = (user_id, conversation_id, message_id)
    args: dict[str, tuple[Any, ...]] = {
        "update_message": (
            *ids,
            '[{"type": "text", "text": "y"}]',
            None,
            None,
            None,
            1 << 20,
            9,
            300.0,
            "{}",
        ),
        "delete_own_message": (*ids, 300.0),
        "delete_message": ids,
    }
    async with conn.transaction():  # EXPLAIN does not execute, but keep it harmless anyway
        nodes = await explain(conn, Q[name], *args[name], generic=True)
    assert_index_scan(nodes, "messages_conversation_id_id_key", "messages")
    if name != "update_message":  # the versions it deletes
        assert_index_scan(nodes, "message_versions_pkey", "message_versions")
    for index in ("messages_conversation_id_id_key", "conversation_members_pkey"):
        assert index in Q[name].uses
