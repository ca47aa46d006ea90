"""Export and import: chunks of a user's conversations and messages read in order, and the
writes of an import (conversations by statement, messages by COPY). The use cases in
``dal.usecases.transfer`` put them in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dal.database import Executor, Record, fetch_all, fetch_value, translating
from dal.queries import Q
from dal.records.conversations import Conversation

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    # A connection (a pooled one or not): COPY and pipelined inserts need one, not a pool.
    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
# Where an export starts reading conversations (newest first): past any (updated_at, id).
FIRST_KEYSET = (datetime.max.replace(tzinfo=UTC), UUID(int=2**128 - 1))
# The columns an import copies into messages, in the order of each COPY row
# (dal.usecases.transfer writes the rows in PostgreSQL's binary COPY format). user_id is the
# conversation's owner, given as insert_message gives it: left NULL, a trigger would look it up
# for every row. The importer is every message's sender; each follows the one before it
# (parent_seq; NULL for the first): one branch, all of it active.
MESSAGE_COLUMNS = (
    "conversation_id",
    "user_id",
    "sender_id",
    "seq",
    "id",
    "role",
    "parts",
    "content",
    "metadata",
    "status",
    "parts_bytes",
    "parts_count",
    "metadata_bytes",
    "parent_seq",
)


async def list_conversations_for_export(
    db: Executor,
    *,
    user_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
    max_bytes: int,
) -> tuple[list[Conversation], bool]:
    """The caller's conversations after the keyset ``after`` ((updated_at, id) of the last
    one read; None: from the newest), at most ``limit`` and ``max_bytes`` (at least one), and
    whether more follow."""
    updated_at, last_id = after or FIRST_KEYSET
    rows = await fetch_all(
        db, Q["list_conversations_for_export"], user_id, updated_at, last_id, limit + 1, max_bytes
    )
    chunk = [row for row in rows if row["metadata"] is not None]
    return Conversation.from_rows(chunk), len(chunk) < len(rows)


async def list_messages_for_export(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    after_seq: int,
    limit: int,
    max_bytes: int,
) -> tuple[Sequence[Record], bool]:
    """The rows (Message's columns, in its field order) of the messages of the caller's
    conversation after ``after_seq``, at most ``limit`` and ``max_bytes`` (at least one), and
    whether more follow. Rows, not records: an export writes them straight to JSON."""
    rows = await fetch_all(
        db,
        Q["list_messages_for_export"],
        user_id,
        conversation_id,
        after_seq,
        limit + 1,
        max_bytes,
    )
    if rows and rows[-1]["parts"] is None:
        return rows[:-1], True
    return rows, False


async def list_existing_conversation_ids(db: Executor, *, ids: Sequence[UUID]) -> list[UUID]:
    """Which of ``ids`` a conversation already has (anyone's)."""
    rows = await fetch_all(db, Q["list_existing_conversation_ids"], list(ids))
    return [row["id"] for row in rows]


async def insert_imported_conversations(
    db: Connection, *, user_id: UUID, conversations: Sequence[tuple[Any, ...]]
) -> None:
    """Insert conversations, each ``(id, title, metadata, tags, thread_id, version,
    message_count)``, in one pipelined round trip. A taken id raises Conflict (its constraint
    conversations_pkey), which aborts the caller's transaction."""
    if not conversations:
        return
    with translating():
        await db.executemany(
            Q["insert_imported_conversation"].sql,
            [(user_id, *conversation) for conversation in conversations],
        )


async def update_import_timeout(db: Executor, *, seconds: float) -> None:
    """Let the statements of the rest of this transaction run ``seconds`` (an import's)."""
    await fetch_value(db, Q["update_import_timeout"], str(max(1, round(seconds * 1000))))


async def copy_messages(
    db: Connection, *, source: AsyncIterable[bytes], timeout: float | None = None
) -> None:
    """COPY messages in from ``source``: PostgreSQL's binary COPY format (header, rows of
    MESSAGE_COLUMNS, trailer), in chunks. The conversations must exist (same transaction), and
    each row's user_id be its conversation's owner. ``timeout``: how long the client waits
    (None: the connection's command timeout)."""
    with translating():
        await db.copy_to_table(
            "messages", source=source, columns=MESSAGE_COLUMNS, format="binary", timeout=timeout
        )
