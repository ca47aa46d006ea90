"""The caller's agent threads as the HTTP API shows them: state, history, copy, prune.

Each use case checks the owner with a caller-scoped gateway of ``dal.gateways.threads``, then
reads or writes checkpoints with the owner-keyed gateways of ``dal.gateways.checkpoints``, in
one transaction: reads in one snapshot, writes with the thread row locked. Checkpoints are
built and decoded by the saver's codec (``dal.langgraph.codec``), so the saver and the HTTP
API store values alike; values come back decoded and as JSON (``dal.langgraph.json_values``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import ormsgpack
from langgraph.checkpoint.base.id import uuid6
from pydantic import JsonValue

from dal.database import Executor, transaction, translating
from dal.errors import Conflict, InvalidInput
from dal.gateways import checkpoints, threads
from dal.langgraph import codec
from dal.langgraph.json_values import thread_state
from dal.records.threads import (
    CopiedThread,
    Pruned,
    SavedCheckpoint,
    ThreadHistory,
    ThreadState,
    ThreadStateDraft,
)

MAX_HISTORY = 200
# Keys of a checkpoint's metadata that describe the checkpoint itself (as LangGraph writes
# them): set by put_thread_state, not by its caller.
RESERVED_METADATA = ("source", "step", "parents")
# Thread ids are keys of several indexes (checkpoints.MAX_KEY_BYTES). LangGraph thread ids
# are UUIDs in practice.
MAX_THREAD_ID_BYTES = checkpoints.MAX_KEY_BYTES["thread id"]


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
        await threads.get_thread(conn, user_id=user_id, thread_id=thread_id)
        row = await checkpoints.get_checkpoint(
            conn,
            owner=user_id,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
        )
    return thread_state(row)


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
        await threads.get_thread(conn, user_id=user_id, thread_id=thread_id)
        rows = await checkpoints.list_checkpoints(
            conn,
            owner=user_id,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            before=before,
            metadata_filter=dict(metadata_filter) if metadata_filter else None,
            limit=limit,
        )
    serde = codec.strict_serializer()
    return ThreadHistory(items=[thread_state(row, serde) for row in rows])


def _encode_json_values(values: Mapping[str, JsonValue]) -> codec.EncodedValues:
    """JSON state as the saver stores it (its inline rule, its default serializer);
    InvalidInput for an integer msgpack cannot hold."""
    serde = codec.serializer()

    def dumps(channel: str, value: Any) -> tuple[str, bytes]:
        try:
            return serde.dumps_typed(value)
        except ormsgpack.MsgpackEncodeError as exc:
            raise InvalidInput(f"values.{channel}: integers must fit in 64 bits") from exc

    return codec.encode_values(values, dumps)


async def put_thread_state(
    pool: asyncpg.Pool[Any], *, user_id: UUID, thread_id: str, draft: ThreadStateDraft
) -> SavedCheckpoint:
    """Save ``draft.values`` as the new newest checkpoint of the caller's thread namespace
    (the thread is created for the caller if new), as LangGraph would write a state update:
    its parent is the namespace's newest checkpoint, every channel gets a new version, the
    metadata says ``source: "update"`` and the step. Another user's thread of the same id
    is another thread, untouched.

    Values are stored as the saver stores them (by its codec: JSON scalars inline, the rest
    serialized, once per version), so ``AsyncpgSaver`` reads them back and a graph
    continuing the thread keeps them.
    """
    check_thread_id(thread_id)
    reserved = sorted(set(RESERVED_METADATA) & set(draft.metadata))
    if reserved:
        raise InvalidInput(f"metadata keys {', '.join(reserved)} are set by the server")
    # Serialized before the thread row is locked; the version they get is known only then.
    values = _encode_json_values(draft.values)
    async with transaction(pool) as conn:
        await threads.upsert_thread_of_user(
            conn, user_id=user_id, thread_id=thread_id, conversation_id=draft.conversation_id
        )
        # Read after the thread row is locked: a write that committed meanwhile is the parent.
        parent = await checkpoints.get_latest_checkpoint_head(
            conn, owner=user_id, thread_id=thread_id, checkpoint_ns=draft.checkpoint_ns
        )
        # LangGraph gives every channel a step updates the version after the highest one.
        version = codec.next_version(
            codec.newest_version((parent.channel_versions or {}) if parent else {})
        )
        checkpoint_id = str(uuid6(clock_seq=-1))
        if parent is not None and checkpoint_id <= parent.checkpoint_id:
            # Ids sort by time: a newest checkpoint whose id sorts after a new one was written
            # with a clock ahead of ours; the new one would not be the newest.
            raise Conflict(
                f"the newest checkpoint {parent.checkpoint_id} sorts after a new one: "
                "was it written with a clock ahead of this server's?"
            )
        step = parent.step + 1 if parent is not None and type(parent.step) is int else 0
        checkpoint = codec.update_checkpoint(checkpoint_id, sorted(draft.values), version)
        put = codec.checkpoint_put(
            owner=user_id,
            thread_id=thread_id,
            checkpoint_ns=draft.checkpoint_ns,
            parent_checkpoint_id=parent.checkpoint_id if parent else None,
            checkpoint=checkpoint,
            metadata={**draft.metadata, "source": "update", "step": step, "parents": {}},
            values=values,
            versions=checkpoint["channel_versions"],
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
        await threads.insert_thread_copy(
            conn, user_id=user_id, source_thread_id=thread_id, target_thread_id=target_thread_id
        )
        copied = await checkpoints.copy_thread_of_owner(
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
        await threads.get_thread_locked(conn, user_id=user_id, thread_id=thread_id)
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
