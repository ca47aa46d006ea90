"""Agent threads: the thread rows (queries/threads.sql), in two families told apart by name.

A thread belongs to the user who created it (over HTTP, or through a saver whose config
names a ``user_id``), and thread ids are scoped per user: each user has their own thread
``main``; another user's thread, or one nobody owns, is never seen (NotFound) nor in the
way (a write creates the caller's own thread of that id).

- Caller-scoped (keyword ``user_id``, the caller): what the HTTP API runs; another user's
  thread is NotFound. The use cases of ``dal.usecases.threads`` run one of these first, then
  the checkpoint gateways (``dal.gateways.checkpoints``) with the caller as the owner, in the
  same transaction.
- Unscoped (keyword ``owner``, trusted as passed: the saver's, or the caller's once checked),
  at the end of the module.

Where both families have an operation, its name says which: ``..._of_user`` (caller-scoped)
or ``..._of_owner`` (unscoped), e.g. ``delete_thread_of_user`` and ``delete_thread_of_owner``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from dal.cursors import check_limit, decode_keyset, encode_keyset, next_cursor
from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.errors import Conflict, NotFound
from dal.queries import Q
from dal.records.threads import CopyTarget, Thread, ThreadPage


def _key(thread: Thread) -> str:
    return thread.thread_id


def encode_cursor(thread: Thread) -> str:
    """An opaque keyset cursor: the (updated_at, thread_id) of the last thread of a page."""
    return encode_keyset(thread.updated_at, _key(thread))


async def get_thread(db: Executor, *, user_id: UUID, thread_id: str) -> Thread:
    """The caller's thread; NotFound if the caller has none of this id."""
    row = await fetch_one(db, Q["get_thread"], user_id, thread_id)
    if row is None:
        raise NotFound("thread", thread_id)
    return Thread.from_row(row)


async def get_thread_locked(db: Executor, *, user_id: UUID, thread_id: str) -> Thread:
    """``get_thread``, the row locked against deletion until the transaction ends."""
    row = await fetch_one(db, Q["get_thread_locked"], user_id, thread_id)
    if row is None:
        raise NotFound("thread", thread_id)
    return Thread.from_row(row)


async def list_threads(
    db: Executor, *, user_id: UUID, limit: int = 50, cursor: str | None = None
) -> ThreadPage:
    """One page of the caller's threads, most recently updated first.

    Pass the page's ``next_cursor`` back to get the next one; it is None on the last page.
    """
    check_limit(limit)
    if cursor is None:
        rows = await fetch_all(db, Q["list_threads"], user_id, limit + 1)
    else:
        updated_at, last_id = decode_keyset(cursor)
        rows = await fetch_all(
            db, Q["list_threads_before"], user_id, updated_at, last_id, limit + 1
        )
    items = Thread.from_rows(rows[:limit])
    return ThreadPage(items=items, next_cursor=next_cursor(items, len(rows) > limit, _key))


async def upsert_thread_of_user(
    db: Executor, *, user_id: UUID, thread_id: str, conversation_id: UUID | None = None
) -> Thread:
    """The caller's thread, created if new, its row locked until the transaction ends (and
    named by the caller's conversation ``conversation_id`` if given). NotFound if the
    conversation is not the caller's; Conflict if another conversation names the thread."""
    try:
        row = await fetch_one(db, Q["upsert_thread_of_user"], user_id, thread_id, conversation_id)
    except Conflict as exc:
        if exc.constraint != "conversations_user_thread_key":
            raise
        raise Conflict(
            f"thread {thread_id} already serves another conversation: set that "
            "conversation's thread_id to null first",
            constraint=exc.constraint,
        ) from exc
    if row is None:
        raise NotFound("thread", thread_id)
    thread = Thread.from_row(row)
    if conversation_id is not None and thread.conversation_id != conversation_id:
        raise NotFound("conversation", conversation_id)
    return thread


async def insert_thread_copy(
    db: Executor, *, user_id: UUID, source_thread_id: str, target_thread_id: str
) -> None:
    """Create the caller's new thread ``target_thread_id`` as a copy of the caller's thread
    (its conversation and metadata; the source locked against deletion until the transaction
    ends). NotFound if the source is not the caller's; Conflict if the target id is taken."""
    row = await fetch_one(db, Q["insert_thread_copy"], user_id, source_thread_id, target_thread_id)
    assert row is not None  # SELECT EXISTS ... always returns its row
    target = CopyTarget.from_row(row)
    if not target.source_found:
        raise NotFound("thread", source_thread_id)
    if not target.created:
        raise Conflict(f"thread {target_thread_id} already exists: copy to a new thread id")


async def update_thread_of_user(
    db: Executor, *, user_id: UUID, thread_id: str, metadata: dict[str, Any]
) -> Thread:
    """Replace the caller's thread's metadata (a ``retention`` object in it overrides the
    retention policies for the thread); NotFound if missing or not theirs. A thread a saver
    wrote without a user: ``update_thread_metadata_of_owner``."""
    row = await fetch_one(db, Q["update_thread_of_user"], user_id, thread_id, metadata)
    if row is None:
        raise NotFound("thread", thread_id)
    return Thread.from_row(row)


async def delete_thread_of_user(db: Executor, *, user_id: UUID, thread_id: str) -> None:
    """Delete the caller's thread with its checkpoints; NotFound if missing or not theirs."""
    if await fetch_value(db, Q["delete_thread_of_user"], user_id, thread_id) is None:
        raise NotFound("thread", thread_id)


# --- unscoped: the owner is trusted as passed (the saver's, or the caller's once checked) ---


async def delete_thread_of_owner(db: Executor, *, owner: UUID, thread_id: str) -> bool:
    """Delete the owner's thread with all its checkpoints, blobs and writes; False if there
    was none."""
    return await fetch_value(db, Q["delete_thread_of_owner"], owner, thread_id) is not None


async def update_thread_metadata_of_owner(
    db: Executor, *, owner: UUID, thread_id: str, metadata: dict[str, Any]
) -> bool:
    """Replace the metadata of the owner's thread (the nil UUID: a thread a saver wrote
    without a user); False if there is none."""
    found = await fetch_value(db, Q["update_thread_metadata_of_owner"], owner, thread_id, metadata)
    return found is not None


async def list_threads_locked_for_prune(
    db: Executor, *, owner: UUID, thread_ids: Sequence[str]
) -> list[str]:
    """Which of these threads the owner has, locked against saves until the transaction ends
    (a prune runs in it): saves under way commit first, the next ones wait."""
    rows = await fetch_all(db, Q["list_threads_locked_for_prune"], owner, list(thread_ids))
    return [row["thread_id"] for row in rows]
