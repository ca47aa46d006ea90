"""No session state leaks from one use of a pooled connection to the next.

Mnemo's pool skips asyncpg's reset query on release (dal.database.keep_session). That is safe
only because nothing Mnemo runs leaves session state behind; these tests prove it, statically
for every named query and dynamically after every gateway, failures included.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest

from dal.database import open_pool
from dal.errors import DomainError
from dal.gateways import conversations, messages, meta, users
from dal.ids import new_id
from dal.queries import Q
from dal.records.conversations import ConversationDraft, ConversationPatch
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.users import UserDraft, UserPatch
from dal.settings import Settings

# Statements that change the session, and functions or clauses that do so inside others.
SESSION_STATEMENTS = {"SET", "RESET", "LISTEN", "PREPARE", "DECLARE", "DISCARD", "LOAD"}
SESSION_STATE = re.compile(
    r"set_config\s*\(|pg_advisory_lock|CREATE\s+(TEMP|TEMPORARY)\b|WITH\s+HOLD",
    re.IGNORECASE,
)


def changes_session(sql: str) -> bool:
    return sql.split(None, 1)[0].upper() in SESSION_STATEMENTS or bool(SESSION_STATE.search(sql))


def test_no_named_query_changes_session_state() -> None:
    offenders = [q.source for q in Q.values() if changes_session(q.sql)]
    assert offenders == []
    # The check itself can fail.
    assert changes_session("SET work_mem = '1MB'") and changes_session("SELECT pg_advisory_lock(1)")
    assert not changes_session("UPDATE t\n   SET a = 1")


async def leftovers(conn: Any) -> dict[str, Any]:
    """Everything a session can carry over, as seen from that session."""
    return {
        "in_transaction": conn.is_in_transaction(),
        "session_settings": await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE source = 'session'"
        ),
        "listening": await conn.fetch("SELECT pg_listening_channels()"),
        "advisory_locks": await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ),
        # The unnamed portal is the query asking; any named one would be left over.
        "cursors": await conn.fetchval("SELECT count(*) FROM pg_cursors WHERE name <> ''"),
        "sql_prepared": await conn.fetchval(
            "SELECT count(*) FROM pg_prepared_statements WHERE from_sql"
        ),
        "temp_schema": await conn.fetchval("SELECT pg_my_temp_schema()::int"),
    }


CLEAN = {
    "in_transaction": False,
    "session_settings": [],
    "listening": [],
    "advisory_locks": 0,
    "cursors": 0,
    "sql_prepared": 0,
    "temp_schema": 0,
}


@pytest.fixture
async def one_connection_pool(settings: Settings) -> Any:
    """A pool of exactly one connection: every call reuses the previous call's session."""
    pool = await open_pool(
        settings.model_copy(update={"db_min_connections": 1, "db_max_connections": 1})
    )
    try:
        yield pool
    finally:
        await pool.close()


async def test_every_gateway_leaves_the_session_clean(one_connection_pool: Any) -> None:
    pool = one_connection_pool
    pids: set[int] = set()

    async def check(label: str) -> None:
        async with pool.acquire() as conn:
            pids.add(conn.get_server_pid())
            assert await leftovers(conn) == CLEAN, label

    created = await users.create_user(pool, draft=UserDraft(username="s"))
    await check("create_user")
    uid = created.user.id
    steps: list[tuple[str, Any]] = [
        ("get_user", users.get_user(pool, user_id=uid)),
        ("get_user_by_username", users.get_user_by_username(pool, username="s")),
        ("update_user", users.update_user(pool, user_id=uid, patch=UserPatch(display_name="S"))),
        ("get_user_by_token", users.get_user_by_token(pool, secret=created.token.secret)),
        ("create_user conflict", users.create_user(pool, draft=UserDraft(username="s"))),
        ("insert_token", users.insert_token(pool, user_id=uid)),
        ("revoke_token", users.revoke_token(pool, user_id=uid, token_id=created.token.token.id)),
        ("get_server_state", meta.get_server_state(pool)),
    ]
    for label, step in steps:
        try:
            await step
        except DomainError:
            pass
        await check(label)

    conv = await conversations.insert_conversation(pool, user_id=uid, draft=ConversationDraft())
    cid = conv.id
    mid = new_id()
    draft = MessageDraft(id=mid, role="assistant", parts=[], status="streaming")
    more: list[tuple[str, Any]] = [
        ("list_conversations", conversations.list_conversations(pool, user_id=uid)),
        (
            "update_conversation stale",
            conversations.update_conversation(
                pool,
                user_id=uid,
                conversation_id=cid,
                patch=ConversationPatch(title="t"),
                expected_version=9,
            ),
        ),
        (
            "insert_message",
            messages.insert_message(pool, user_id=uid, conversation_id=cid, draft=draft),
        ),
        (
            "insert_message retry",
            messages.insert_message(pool, user_id=uid, conversation_id=cid, draft=draft),
        ),
        (
            "update_message",
            messages.update_message(
                pool,
                user_id=uid,
                conversation_id=cid,
                message_id=mid,
                patch=MessagePatch(append_parts=[{"type": "text", "text": "x"}], status="complete"),
            ),
        ),
        (
            "update_message conflict",
            messages.update_message(
                pool,
                user_id=uid,
                conversation_id=cid,
                message_id=mid,
                patch=MessagePatch(append_parts=[{"type": "text", "text": "x"}]),
            ),
        ),
        (
            "insert_message NUL",
            messages.insert_message(
                pool,
                user_id=uid,
                conversation_id=cid,
                draft=MessageDraft(role="user", parts=[{"type": "text", "text": "\x00"}]),
            ),
        ),
        ("list_messages", messages.list_messages(pool, user_id=uid, conversation_id=cid)),
        (
            "list_messages after",
            messages.list_messages(pool, user_id=uid, conversation_id=cid, after=0),
        ),
        (
            "get_message",
            messages.get_message(pool, user_id=uid, conversation_id=cid, message_id=mid),
        ),
        (
            "delete_message",
            messages.delete_message(pool, user_id=uid, conversation_id=cid, message_id=mid),
        ),
        (
            "delete_conversation",
            conversations.delete_conversation(pool, user_id=uid, conversation_id=cid),
        ),
        ("deactivate_user", users.deactivate_user(pool, user_id=uid)),
    ]
    for label, step in more:
        try:
            await step
        except DomainError:
            pass
        await check(label)
    assert len(pids) == 1  # one session throughout: each check saw what the previous call left


async def test_leftovers_detects_what_a_reset_would_have_cleared(
    one_connection_pool: Any,
) -> None:
    """The checks above can fail: state set by hand on a pooled connection is seen next time."""
    pool = one_connection_pool
    async with pool.acquire() as conn:
        await conn.execute("SET work_mem = '7MB'")
        await conn.execute("LISTEN mnemo_probe")
        await conn.execute("SELECT pg_advisory_lock(42)")
    async with pool.acquire() as conn:
        seen = await leftovers(conn)
        assert seen["session_settings"] and seen["listening"] and seen["advisory_locks"] == 1
        await conn.execute("RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()")
    # An open transaction is still rolled back on release (asyncpg always does that).
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    await pool.release(conn)
    async with pool.acquire() as conn:
        assert await leftovers(conn) == CLEAN
    assert isinstance(pool, asyncpg.Pool)
