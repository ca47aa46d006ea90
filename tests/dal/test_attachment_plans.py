"""The attachments' statements are served by their indexes, under custom and generic plans
alike (see tests/dal/test_plans.py): many users' files, most of them referenced by messages,
many orphaned long ago and some just now, ANALYZEd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain

USERS, FILES_PER_USER, CHUNKS = 20, 200, 4


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users, each with a conversation of FILES_PER_USER messages referencing one file
    of CHUNKS chunks each; a tenth of the files orphaned long ago."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO conversations (id, user_id, title, last_seq, message_count)
            SELECT gen_random_uuid(), u.id, 'c', {FILES_PER_USER}, {FILES_PER_USER}
              FROM users AS u;
            INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                                  parts_count, metadata_bytes, sender_id)
            SELECT c.id, s, gen_random_uuid(), 'user', '[]', '', 2, 0, 2, c.user_id
              FROM conversations AS c, generate_series(1, {FILES_PER_USER}) AS s;
            INSERT INTO attachments (id, user_id, name, media_type, size, sha256, state,
                                     orphaned_at)
            SELECT gen_random_uuid(), c.user_id, 'f' || s, 'image/png', {CHUNKS},
                   sha256(convert_to(c.id::text || s, 'UTF8')), 'ready',
                   CASE WHEN s % 10 = 0 THEN now() - interval '30 days' END
              FROM conversations AS c, generate_series(1, {FILES_PER_USER}) AS s;
            INSERT INTO attachment_chunks (attachment_id, n, data)
            SELECT a.id, n, '\\x00'::bytea
              FROM attachments AS a, generate_series(0, {CHUNKS - 1}) AS n;
            INSERT INTO message_attachments (conversation_id, seq, attachment_id)
            SELECT c.id, substring(a.name FROM 2)::int8, a.id
              FROM attachments AS a
              JOIN conversations AS c ON c.user_id = a.user_id
             WHERE a.orphaned_at IS NULL;
            """
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A plain connection on the seeded database, and a referenced file's row."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    row = await conn.fetchrow(
        "SELECT a.id, a.user_id, a.sha256, r.conversation_id, m.id AS message_id"
        " FROM attachments AS a"
        " JOIN message_attachments AS r ON r.attachment_id = a.id"
        " JOIN messages AS m ON m.conversation_id = r.conversation_id AND m.seq = r.seq"
        " ORDER BY a.id LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row
    finally:
        await conn.close()


def _seq_scans(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Relation Name"] for n in nodes if n.get("Node Type") == "Seq Scan"}


GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])


@GENERIC
async def test_a_file_is_found_by_its_key_and_its_references(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    stranger = row["conversation_id"]  # an id that is no user: the references are searched
    nodes = await explain(conn, Q["get_attachment"], stranger, row["id"], generic=generic)
    assert_index_scan(nodes, "attachments_pkey", "attachments")
    assert_index_scan(nodes, "message_attachments_attachment_idx", "message_attachments")


@GENERIC
async def test_a_slice_reads_its_chunks_by_key(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    nodes = await explain(
        conn, Q["list_attachment_chunks"], row["user_id"], row["id"], 1, 2, 1, generic=generic
    )
    assert_index_scan(nodes, "attachment_chunks_pkey", "attachment_chunks")


@GENERIC
async def test_an_upload_ends_finding_its_twin_by_hash(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    nodes = await explain(
        conn,
        Q["update_attachment_ready"],
        row["user_id"],
        row["id"],
        "\\x" + row["sha256"].hex() if generic else row["sha256"],
        "image/png",
        False,
        generic=generic,
    )
    assert_index_scan(nodes, "attachments_user_sha256_key", "attachments")


@GENERIC
async def test_a_conversations_files_are_paged_by_their_references_key(
    seeded: Any, generic: bool
) -> None:
    conn, row = seeded
    args = (row["user_id"], row["conversation_id"], 0, row["id"], 51)
    nodes = await explain(conn, Q["list_attachments_of_conversation"], *args, generic=generic)
    assert_index_scan(nodes, "message_attachments_pkey", "message_attachments")
    assert_index_scan(nodes, "attachments_pkey", "attachments")
    assert not _seq_scans(nodes) & {"messages", "message_attachments", "attachments"}


@GENERIC
async def test_a_messages_files_are_found_by_its_key(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    args = (row["user_id"], row["conversation_id"], row["message_id"])
    nodes = await explain(conn, Q["list_attachments_of_message"], *args, generic=generic)
    assert_index_scan(nodes, "message_attachments_pkey", "message_attachments")
    assert_index_scan(nodes, "attachments_pkey", "attachments")
    assert not _seq_scans(nodes) & {"messages", "message_attachments", "attachments"}


@GENERIC
@pytest.mark.parametrize("name", ["delete_orphaned_attachments", "count_orphaned_attachments"])
async def test_collection_finds_orphans_by_their_index(
    seeded: Any, generic: bool, name: str
) -> None:
    conn, _ = seeded
    args = (3600.0, 86400.0, 100) if name.startswith("delete") else (3600.0, 86400.0)
    nodes = await explain(conn, Q[name], *args, generic=generic)
    assert_index_scan(nodes, "attachments_orphaned_idx", "attachments")
