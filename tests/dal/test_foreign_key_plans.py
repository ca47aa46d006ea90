"""Deletes that follow a foreign key find the referencing rows through an index.

PostgreSQL runs each foreign key's action (ON DELETE CASCADE / SET NULL) as a statement of its
own, inside the delete, one per deleted row; without an index on the referencing column, each
is a scan of the referencing table. These tests capture the plans of those nested statements
(auto_explain, its log sent to the client) under custom and generic plans: the foreign key's
statements are cached plans like any prepared statement, so either can run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import psycopg
import pytest

from dal.database import init_connection
from tests.dal.test_plans import assert_index_scan, walk

USERS, TOKENS_PER_USER, THREADS_PER_USER = 200, 25, 30


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """The module's database, seeded once: users with tokens, conversations and threads (about
    a third linked to a conversation), ANALYZEd. Tests undo what they change (``seeded``)."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO api_tokens (id, user_id, token_hash)
            SELECT gen_random_uuid(), u.id, sha256((u.id::text || i)::bytea)
              FROM users AS u, generate_series(1, {TOKENS_PER_USER}) AS i;
            INSERT INTO conversations (id, user_id, title)
            SELECT gen_random_uuid(), u.id, 'c' || i
              FROM users AS u, generate_series(1, {THREADS_PER_USER}) AS i;
            UPDATE conversations SET thread_id = 't-' || id WHERE id::text < '5';
            INSERT INTO threads (thread_id, owner, user_id)
            SELECT 't-' || c.id, c.user_id, c.user_id FROM conversations AS c;
            ANALYZE;
            """
        )
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection of the test's own on the module's seeded database, inside a transaction
    rolled back at the end: what the test deletes is there again for the next one."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    await init_connection(conn)
    undo = conn.transaction()
    await undo.start()
    try:
        yield conn
    finally:
        await undo.rollback()
        await conn.close()


async def nested_plans(
    conn: asyncpg.Connection[Any], run: Any, *, generic: bool
) -> dict[str, list[dict[str, Any]]]:
    """Run ``run(conn)`` in a (sub)transaction, released, with auto_explain logging every
    statement it runs, nested ones included, to this client: {query text: plan nodes}."""
    plans: dict[str, list[dict[str, Any]]] = {}

    def collect(_: Any, message: Any) -> None:
        text = str(message.message)
        if "plan:" in text:
            plan = json.loads(text.split("plan:", 1)[1])
            plans[plan["Query Text"]] = list(walk(plan["Plan"]))

    await conn.execute("LOAD 'auto_explain'")
    conn.add_log_listener(collect)
    try:
        async with conn.transaction():
            mode = "force_generic_plan" if generic else "force_custom_plan"
            await conn.execute(
                f"""
                SET LOCAL plan_cache_mode = {mode};
                SET LOCAL auto_explain.log_min_duration = 0;
                SET LOCAL auto_explain.log_nested_statements = on;
                SET LOCAL auto_explain.log_format = json;
                SET LOCAL client_min_messages = log;
                """
            )
            await run(conn)
            await conn.execute("SET LOCAL client_min_messages = notice")
    finally:
        conn.remove_log_listener(collect)
    return plans


def plan_on(plans: dict[str, list[dict[str, Any]]], table: str) -> list[dict[str, Any]]:
    """The plan of the one nested statement that reads ``table`` (the foreign key's)."""
    found = [
        nodes
        for nodes in plans.values()
        if any(n.get("Relation Name") == table and "Scan" in n["Node Type"] for n in nodes)
    ]
    assert len(found) == 1, plans.keys()
    return found[0]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_deleting_a_user_finds_their_tokens_by_index(seeded: Any, generic: bool) -> None:
    user_id: UUID = await seeded.fetchval("SELECT id FROM users ORDER BY id LIMIT 1")

    async def delete_user(conn: Any) -> None:
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)

    plans = await nested_plans(seeded, delete_user, generic=generic)
    assert_index_scan(plan_on(plans, "api_tokens"), "api_tokens_user_id_idx", "api_tokens")
    left = await seeded.fetchval("SELECT count(*) FROM api_tokens WHERE user_id = $1", user_id)
    assert left == 0
    assert await seeded.fetchval("SELECT count(*) FROM api_tokens") == (
        (USERS - 1) * TOKENS_PER_USER
    )
