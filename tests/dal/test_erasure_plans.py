"""The erasure's statements (queries/erasure.sql) find a user's rows by their indexes, under
custom and generic plans alike (see tests/dal/test_plans.py): every index a statement's
``uses:`` lines name is in its plan, and no table it reads by an index is scanned whole. Many
users, each with conversations shared with another, messages from both, membership-change
messages, edits, deletions, feedback, files, tasks, snapshots, profiles, tokens and threads,
ANALYZEd, so that a sequential scan would be chosen if it could."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import explain

USERS = 2000
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
# Statements about a conversation someone else owns (the user a member of it).
SHARED = {"update_erasure_events", "update_erasure_messages", "delete_erasure_membership"}
ERASURE = sorted(name for name in Q if "_erasure_" in name)

# Seeded without triggers (session_replication_role = replica): every derived row is written
# here. Conversation c of user u (u.n = i) is shared with user i % USERS + 1 ("other").
SEED = f"""
SET session_replication_role = replica;
INSERT INTO users (id, username)
SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
CREATE TEMP TABLE numbered AS
SELECT id, row_number() OVER (ORDER BY username) AS n FROM users;
CREATE TEMP TABLE pairs AS
SELECT a.id AS owner, b.id AS other, a.n FROM numbered AS a
  JOIN numbered AS b ON b.n = a.n % {USERS} + 1;
INSERT INTO conversations (id, user_id, title, last_seq, message_count, member_count,
                           last_event_seq)
SELECT gen_random_uuid(), p.owner, 'c' || k, 15, 15, 2, 15
  FROM pairs AS p, generate_series(1, 2) AS k;
CREATE TEMP TABLE convs AS
SELECT c.id, p.owner, p.other, p.n FROM conversations AS c JOIN pairs AS p ON p.owner = c.user_id;
INSERT INTO conversation_members (conversation_id, user_id, role)
SELECT id, owner, 'owner' FROM convs;
INSERT INTO conversation_members (conversation_id, user_id, role, added_by)
SELECT id, other, 'member', owner FROM convs;
INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes, parts_count,
                      metadata_bytes, user_id, sender_id, retracted_by)
SELECT c.id, s, gen_random_uuid(),
       CASE WHEN s = 1 THEN 'system' ELSE 'user' END,
       CASE WHEN s = 1
            THEN jsonb_build_array(jsonb_build_object('type', 'data-member', 'data',
                     jsonb_build_object('action', 'added', 'user_id', c.other, 'by', c.owner)))
            ELSE '[{{"type": "text", "text": "x"}}]' END,
       'x', 29, 1, 2, c.owner,
       CASE WHEN s % 5 = 0 THEN c.other ELSE c.owner END,
       CASE WHEN s = 7 AND c.n % 10 = 0 THEN c.owner END
  FROM convs AS c, generate_series(1, 15) AS s;
INSERT INTO message_versions (conversation_id, seq, version, parts, metadata, edited_by)
SELECT id, 2, 1, '[]', '{{}}', owner FROM convs;
INSERT INTO message_feedback (conversation_id, seq, user_id, rating)
SELECT id, 3, other, 'up' FROM convs;
INSERT INTO conversation_events (conversation_id, seq, type, payload)
SELECT c.id, s, 'message.created', jsonb_build_object('sender_id', c.owner, 'seq', s)
  FROM convs AS c, generate_series(1, 15) AS s;
INSERT INTO chat_sessions (conversation_id, session_no) SELECT id, 1 FROM convs;
INSERT INTO message_tool_calls (conversation_id, tool_call_id, call_seq)
SELECT id, 'call', 4 FROM convs;
INSERT INTO attachments (id, user_id, name, media_type, size, sha256, state, orphaned_at)
SELECT gen_random_uuid(), id, 'f', 'text/plain', 2, sha256(convert_to(id::text, 'UTF8')),
       'ready', NULL
  FROM users;
INSERT INTO attachment_chunks (attachment_id, n, data)
SELECT a.id, k, '\\x00' FROM attachments AS a, generate_series(0, 1) AS k;
INSERT INTO attachment_thumbnails (attachment_id, refused) SELECT id, 'no' FROM attachments;
INSERT INTO message_attachments (conversation_id, seq, attachment_id)
SELECT DISTINCT ON (c.owner) c.id, 4, a.id
  FROM convs AS c JOIN attachments AS a ON a.user_id = c.owner ORDER BY c.owner, c.id;
INSERT INTO attachment_usage (user_id, bytes) SELECT id, 2 FROM users;
INSERT INTO user_message_counts (user_id, message_count) SELECT id, 30 FROM users;
INSERT INTO tasks (id, user_id, kind, title)
SELECT gen_random_uuid(), u.id, 'research', 't' FROM users AS u, generate_series(1, 3);
INSERT INTO task_events (task_id, seq, type, payload)
SELECT t.id, s, 'status', '{{}}' FROM tasks AS t, generate_series(1, 2) AS s;
INSERT INTO workspace_snapshots (id, user_id, name, panels, origin)
SELECT gen_random_uuid(), u.id, 's' || k, '[]', 'manual'
  FROM users AS u, generate_series(1, 2) AS k;
INSERT INTO profiles (id, user_id, kind, name, settings)
SELECT gen_random_uuid(), u.id, 'llm', 'p' || k, '{{}}' FROM users AS u, generate_series(1, 2) AS k;
INSERT INTO api_tokens (id, user_id, token_hash)
SELECT gen_random_uuid(), u.id, sha256(convert_to(u.id::text || k, 'UTF8'))
  FROM users AS u, generate_series(1, 2) AS k;
INSERT INTO threads (thread_id, owner, user_id)
SELECT 't' || k, u.id, u.id FROM users AS u, generate_series(1, 2) AS k;
INSERT INTO checkpoints (thread_id, owner, checkpoint_id, checkpoint)
SELECT t.thread_id, t.owner, 'c' || k, '{{}}' FROM threads AS t, generate_series(1, 5) AS k;
INSERT INTO checkpoint_blobs (thread_id, owner, channel, version, type, blob)
SELECT t.thread_id, t.owner, 'm', k::text, 'json', '\\x00'
  FROM threads AS t, generate_series(1, 5) AS k;
INSERT INTO checkpoint_writes (thread_id, owner, checkpoint_id, task_id, idx, channel, blob)
SELECT t.thread_id, t.owner, 'c' || k, 'x', 0, 'm', '\\x00'
  FROM threads AS t, generate_series(1, 5) AS k;
INSERT INTO user_passwords (user_id, hash, updated_at) SELECT id, 'h', now() FROM users;
INSERT INTO auth_sessions (id, user_id, created_at, expires_at)
SELECT gen_random_uuid(), u.id, now(), now() + interval '1 day'
  FROM users AS u, generate_series(1, 2) AS k;
INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at)
SELECT sha256(convert_to(s.id::text || k, 'UTF8')), s.id, now(), CASE WHEN k < 3 THEN now() END
  FROM auth_sessions AS s, generate_series(1, 3) AS k;
INSERT INTO login_failures (username, client, failures, last_failed_at)
SELECT u.username, '10.0.0.' || k, 2, now() FROM users AS u, generate_series(1, 2) AS k;
SET session_replication_role = origin;
ANALYZE;
"""


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(SEED)
    return module_database_url


@pytest.fixture
async def seeded(
    seeded_url: str,
) -> AsyncIterator[tuple[asyncpg.Connection[Any], UUID, UUID, UUID]]:
    """A plain connection; a user, a conversation they own, and one they are a member of."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    user = await conn.fetchval("SELECT id FROM users ORDER BY username LIMIT 1 OFFSET 9")
    own = await conn.fetchval("SELECT id FROM conversations WHERE user_id = $1 LIMIT 1", user)
    shared = await conn.fetchval(
        "SELECT m.conversation_id FROM conversation_members AS m "
        "WHERE m.user_id = $1 AND m.role = 'member' LIMIT 1",
        user,
    )
    try:
        yield conn, user, own, shared
    finally:
        await conn.close()


async def leading_keys(conn: Any) -> dict[str, set[tuple[str, frozenset[str]]]]:
    """Each index's keys a lookup may go by: its table with its first key column, and with
    its first two (in either order)."""
    rows = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS table_name,
               a.attname AS first, b.attname AS second
          FROM pg_index AS i
          JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          LEFT JOIN pg_attribute AS b ON b.attrelid = i.indrelid AND b.attnum = i.indkey[1]
        """
    )
    keys: dict[str, set[tuple[str, frozenset[str]]]] = {}
    for r in rows:
        keys[r["index"]] = {(r["table_name"], frozenset([r["first"]]))}
        if r["second"] is not None:
            keys[r["index"]].add((r["table_name"], frozenset([r["first"], r["second"]])))
    return keys


def _args(name: str, user: UUID, username: str, own: UUID, shared: UUID) -> list[Any]:
    values = {"user_id": user, "username": username, "after_seq": 0, "batch": 100, "limit": 20}
    values["conversation_id"] = shared if name in SHARED else own
    return [values[p.name] for p in Q[name].params]


def test_every_erasure_statement_names_the_indexes_it_needs() -> None:
    assert len(ERASURE) >= 20
    for name in ERASURE:
        assert Q[name].uses, name


@GENERIC
@pytest.mark.parametrize("name", ERASURE)
async def test_each_erasure_statement_uses_the_indexes_it_names(
    seeded: Any, generic: bool, name: str
) -> None:
    conn, user, own, shared = seeded
    username = await conn.fetchval("SELECT username FROM users WHERE id = $1", user)
    args = _args(name, user, username, own, shared)
    async with conn.transaction():
        nodes = await explain(conn, Q[name], *args, generic=generic)
    used = {n.get("Index Name") for n in nodes} - {None}
    # An index named is used, or another of its table led by the same column, or by the same
    # two (the planner may take the parent index of messages for their primary key, both led
    # by conversation_id; the members' (user_id, conversation_id) index for their primary key
    # (conversation_id, user_id)): the rows are found by the same key either way.
    keys = await leading_keys(conn)
    reached = set().union(*(keys[i] for i in used)) if used else set()
    missing = {u for u in Q[name].uses if not keys[u] & reached}
    assert missing == set(), (name, used)
    scanned = {n.get("Relation Name") for n in nodes if n.get("Node Type") == "Seq Scan"}
    assert scanned == set(), (name, scanned)
