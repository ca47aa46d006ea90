"""Agent threads as the HTTP API sees them: always scoped by the caller (``user_id``).

A thread belongs to the user who created it (over HTTP, or through a saver whose config
names a ``user_id``), and thread ids are scoped per user: each user has their own thread
``main``; another user's thread, or one nobody owns, is never seen (NotFound) nor in the
way (a write creates the caller's own thread of that id). Checkpoints
are read and written by the gateways of ``dal.gateways.checkpoints``, after a query here has
checked the owner, in one transaction: reads in one snapshot, writes with the thread row
locked. Values come back decoded and as JSON (``dal.values``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import ormsgpack
from langgraph.checkpoint.base.id import uuid6
from pydantic import JsonValue

from dal.cursors import check_limit, decode_keyset, encode_keyset, next_cursor
from dal.database import Executor, fetch_all, fetch_one, fetch_value, transaction, translating
from dal.errors import Conflict, InvalidInput, NotFound
from dal.gateways import checkpoints
from dal.langgraph import AsyncpgSaver
from dal.queries import Q
from dal.records.checkpoints import Blob, CheckpointPut
from dal.records.threads import (
    CheckpointHead,
    CopiedThread,
    CopyTarget,
    Pruned,
    SavedCheckpoint,
    Thread,
    ThreadHistory,
    ThreadPage,
    ThreadState,
    ThreadStateDraft,
)
from dal.values import json_serde, thread_state

MAX_HISTORY = 200
# Keys of a checkpoint's metadata that describe the checkpoint itself (as LangGraph writes
# them): set by put_thread_state, not by its caller.
RESERVED_METADATA = ("source", "step", "parents")
# Thread ids are keys of several indexes (checkpoints.MAX_KEY_BYTES). LangGraph thread ids
# are UUIDs in practice.
MAX_THREAD_ID_BYTES = checkpoints.MAX_KEY_BYTES["thread id"]


def _key(thread: Thread) -> str:
    return thread.thread_id


def encode_cursor(thread: Thread) -> str:
    """An opaque keyset cursor: the (updated_at, thread_id) of the last thread of a page."""
    return encode_keyset(thread.updated_at, _key(thread))


def check_thread_id(thread_id: str) -> str:
    """A thread id a new thread may have: 1 to 500 bytes (UTF-8), no NUL; InvalidInput
    otherwise."""
    return checkpoints.check_key("thread id", thread_id)


@asynccontextmanager
async def _snapshot(pool: asyncpg.Pool[Any]) -> AsyncIterator[Executor]:
    """One connection in a read-only transaction that sees one snapshot: the owner check and
    the checkpoints read after it agree."""
    with translating():
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn


# --- one query each ---------------------------------------------------------------------


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


async def get_latest_checkpoint_head(
    db: Executor, *, user_id: UUID, thread_id: str, checkpoint_ns: str
) -> CheckpointHead | None:
    """Id, channel versions and step of the newest checkpoint of a namespace of the caller's
    thread; None if none."""
    row = await fetch_one(db, Q["get_latest_checkpoint_head"], user_id, thread_id, checkpoint_ns)
    return None if row is None else CheckpointHead.from_row(row)


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


async def delete_thread(db: Executor, *, user_id: UUID, thread_id: str) -> None:
    """Delete the caller's thread with its checkpoints; NotFound if missing or not theirs."""
    if await fetch_value(db, Q["delete_thread_of_user"], user_id, thread_id) is None:
        raise NotFound("thread", thread_id)


# --- use cases: an owner check and the checkpoint gateways, in one transaction ----------


async def get_thread_state(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    thread_id: str,
    checkpoint_ns: str = "",
    checkpoint_id: str | None = None,
) -> ThreadState:
    """A checkpoint of the caller's thread as JSON: the newest of the namespace, or the one
    with ``checkpoint_id``. NotFound if the thread is not the caller's or there is none."""
    async with _snapshot(pool) as conn:
        await get_thread(conn, user_id=user_id, thread_id=thread_id)
        row = await checkpoints.get_checkpoint(
            conn,
            owner=user_id,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
        )
    return thread_state(row, json_serde())


async def list_thread_history(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    thread_id: str,
    checkpoint_ns: str = "",
    limit: int = 20,
    before: str | None = None,
    metadata_filter: Mapping[str, Any] | None = None,
) -> ThreadHistory:
    """Checkpoints of the caller's thread namespace as JSON, newest first: at most ``limit``,
    older than checkpoint ``before`` if given, whose metadata contains ``metadata_filter``.
    NotFound if the thread is not the caller's."""
    if not 1 <= limit <= MAX_HISTORY:
        raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY}")
    async with _snapshot(pool) as conn:
        await get_thread(conn, user_id=user_id, thread_id=thread_id)
        rows = await checkpoints.list_checkpoints(
            conn,
            owner=user_id,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            before=before,
            metadata_filter=dict(metadata_filter) if metadata_filter else None,
            limit=limit,
        )
    serde = json_serde()
    return ThreadHistory(items=[thread_state(row, serde) for row in rows])


def _version_number(version: object) -> int:
    """The counter of a channel version (the saver writes "<counter>.<random>")."""
    try:
        return int(str(version).split(".", 1)[0])
    except ValueError:
        return 0


async def put_thread_state(
    pool: asyncpg.Pool[Any], *, user_id: UUID, thread_id: str, draft: ThreadStateDraft
) -> SavedCheckpoint:
    """Save ``draft.values`` as the new newest checkpoint of the caller's thread namespace
    (the thread is created for the caller if new), as LangGraph would write a state update:
    its parent is the namespace's newest checkpoint, every channel gets a new version, the
    metadata says ``source: "update"`` and the step. Another user's thread of the same id
    is another thread, untouched.

    Values are stored as the saver stores them (JSON scalars inline, the rest serialized by
    its serializer, once per version), so ``AsyncpgSaver`` reads them back and a graph
    continuing the thread keeps them.
    """
    check_thread_id(thread_id)
    reserved = sorted(set(RESERVED_METADATA) & set(draft.metadata))
    if reserved:
        raise InvalidInput(f"metadata keys {', '.join(reserved)} are set by the server")
    saver = AsyncpgSaver(pool)
    inline: dict[str, JsonValue] = {}
    serialized: dict[str, tuple[str, bytes]] = {}
    for channel, value in draft.values.items():
        if isinstance(value, dict | list):
            try:
                serialized[channel] = saver.serde.dumps_typed(value)
            except ormsgpack.MsgpackEncodeError as exc:
                raise InvalidInput(f"values.{channel}: integers must fit in 64 bits") from exc
        else:
            inline[channel] = value
    async with transaction(pool) as conn:
        await upsert_thread_of_user(
            conn, user_id=user_id, thread_id=thread_id, conversation_id=draft.conversation_id
        )
        # Read after the thread row is locked: a write that committed meanwhile is the parent.
        parent = await get_latest_checkpoint_head(
            conn, user_id=user_id, thread_id=thread_id, checkpoint_ns=draft.checkpoint_ns
        )
        previous = (parent.channel_versions or {}) if parent else {}
        # LangGraph gives every channel a step updates the version after the highest one.
        current = max(previous.values(), key=_version_number, default=None)
        version = saver.get_next_version(current, None)
        checkpoint_id = str(uuid6(clock_seq=-1))
        if parent is not None and checkpoint_id <= parent.checkpoint_id:
            # Ids sort by time: a newest checkpoint whose id sorts after a new one was written
            # with a clock ahead of ours; the new one would not be the newest.
            raise Conflict(
                f"the newest checkpoint {parent.checkpoint_id} sorts after a new one: "
                "was it written with a clock ahead of this server's?"
            )
        step = parent.step + 1 if parent is not None and type(parent.step) is int else 0
        channels = sorted(draft.values)
        put = CheckpointPut(
            thread_id=thread_id,
            checkpoint_ns=draft.checkpoint_ns,
            checkpoint_id=checkpoint_id,
            parent_checkpoint_id=parent.checkpoint_id if parent else None,
            checkpoint={
                "v": 4,
                "id": checkpoint_id,
                "ts": datetime.now(UTC).isoformat(),
                "channel_values": inline,
                "channel_versions": dict.fromkeys(channels, version),
                "versions_seen": {},
                "updated_channels": channels,
            },
            metadata={**draft.metadata, "source": "update", "step": step, "parents": {}},
            blobs=[
                Blob(channel=channel, version=version, type=type_, value=data)
                for channel, (type_, data) in serialized.items()
            ],
            owner=user_id,
        )
        await checkpoints.upsert_checkpoint_batch(conn, checkpoints=[put])
    return SavedCheckpoint(
        thread_id=thread_id, checkpoint_ns=draft.checkpoint_ns, checkpoint_id=checkpoint_id
    )


async def copy_thread(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    thread_id: str,
    target_thread_id: str,
    latest_only: bool = False,
) -> CopiedThread:
    """Copy the caller's thread (every checkpoint, or the newest of each namespace) to a new
    thread of the caller's. NotFound if the source is not the caller's; Conflict if the
    caller already has a thread of the target id (nothing is written)."""
    check_thread_id(target_thread_id)
    async with transaction(pool) as conn:
        await insert_thread_copy(
            conn, user_id=user_id, source_thread_id=thread_id, target_thread_id=target_thread_id
        )
        copied = await checkpoints.copy_thread(
            conn,
            owner=user_id,
            source_thread_id=thread_id,
            target_thread_id=target_thread_id,
            latest_only=latest_only,
        )
    return CopiedThread(thread_id=target_thread_id, copied=copied)


async def prune_thread(
    pool: asyncpg.Pool[Any], *, user_id: UUID, thread_id: str, strategy: str
) -> Pruned:
    """Prune the caller's thread: ``keep_latest`` keeps the newest checkpoint of each
    namespace, ``delete`` deletes every checkpoint (the thread stays). NotFound if the thread
    is not the caller's; Conflict for keep_latest on a thread with a LangGraph DeltaChannel
    (its value is rebuilt from the checkpoints keep_latest would delete)."""
    if strategy not in checkpoints.PRUNE_STRATEGIES:
        raise InvalidInput("strategy must be keep_latest or delete")
    async with transaction(pool) as conn:
        await get_thread_locked(conn, user_id=user_id, thread_id=thread_id)
        if strategy == "delete":
            deleted = await checkpoints.delete_checkpoints_of_threads(
                conn, owner=user_id, thread_ids=[thread_id]
            )
        else:
            if await checkpoints.find_delta_channel_threads(
                conn, owner=user_id, thread_ids=[thread_id]
            ):
                raise Conflict(
                    "keep_latest cannot prune a thread that uses a DeltaChannel: "
                    "its state is rebuilt from older checkpoints (use delete)"
                )
            deleted = await checkpoints.delete_checkpoints_except_latest(
                conn, owner=user_id, thread_ids=[thread_id]
            )
    return Pruned(deleted=deleted)
