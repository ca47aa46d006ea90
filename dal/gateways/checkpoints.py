"""Agent checkpoints (LangGraph's contract): checkpoints, channel blobs, pending writes.

These gateways move serialized values; ``dal.langgraph`` serializes them (its codec) and
implements BaseCheckpointSaver on top. Thread ids are scoped per owner: each call names the
``owner`` of the threads it reads or writes (a user's id, or ``NO_OWNER`` for threads a saver
wrote without a user), and never sees another owner's thread of the same id.

Every gateway here is unscoped (keyword ``owner``, trusted as passed): nothing checks that a
caller may see the owner's threads. The saver is trusted server-side code and passes the owner
it is configured with; the HTTP API's use cases (``dal.usecases.threads``) pass the caller
after a caller-scoped gateway of ``dal.gateways.threads`` has checked the thread is theirs, in
the same transaction. Where the caller-scoped family has the same operation, the name says the
family: ``..._of_owner`` here, ``..._of_user`` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.errors import InvalidInput, NotFound
from dal.queries import Q
from dal.records.checkpoints import CheckpointPut, CheckpointRow, DeltaHistoryRow, Write, WritesPut
from dal.records.threads import CheckpointHead

PRUNE_STRATEGIES = ("keep_latest", "delete")
# The owner of threads written without a user (the nil UUID).
NO_OWNER = UUID(int=0)
# Most bytes (UTF-8) of each text that is part of a key. A B-tree entry holds about 2,700
# bytes, and the longest keys (a blob's: thread, owner, namespace, channel, version; a
# write's: thread, owner, namespace, checkpoint, task, index) stay well under it. LangGraph's
# own values are far shorter: UUIDs, node names, "node:task_id" namespaces.
MAX_KEY_BYTES = {
    "thread id": 500,
    "checkpoint_ns": 1000,
    "checkpoint id": 200,
    "task id": 200,
    "channel": 500,
    "version": 200,
}


class InvalidKey(InvalidInput, ValueError):
    """A key that cannot be stored (too long, empty, NUL, not UTF-8). A ValueError too, as
    LangGraph's savers raise for a bad config."""


def check_key(what: str, value: object, *, empty: bool = False) -> str:
    """``value`` as the text of a key part ``what`` (a key of MAX_KEY_BYTES), checked before
    it reaches an index; InvalidKey if it cannot be stored."""
    text = value if isinstance(value, str) else str(value)
    limit = MAX_KEY_BYTES[what]
    if "\x00" in text:
        raise InvalidKey(f"a {what} cannot contain NUL characters")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"a {what} must be valid UTF-8 (no lone surrogates)") from None
    if size > limit or not (text or empty):
        raise InvalidKey(f"a {what} is {0 if empty else 1} to {limit} bytes (UTF-8)")
    return text


def check_checkpoint_put(put: CheckpointPut) -> None:
    """InvalidKey unless every key of the checkpoint and its blobs can be stored."""
    check_key("thread id", put.thread_id)
    check_key("checkpoint_ns", put.checkpoint_ns, empty=True)
    check_key("checkpoint id", put.checkpoint_id)
    for blob in put.blobs:
        check_key("channel", blob.channel, empty=True)
        check_key("version", blob.version, empty=True)


def check_writes_put(put: WritesPut) -> None:
    """InvalidKey unless every key of the writes can be stored."""
    check_key("thread id", put.thread_id)
    check_key("checkpoint_ns", put.checkpoint_ns, empty=True)
    check_key("checkpoint id", put.checkpoint_id)
    check_key("task id", put.task_id, empty=True)
    for write in put.writes:
        check_key("channel", write.channel, empty=True)


async def upsert_checkpoint_batch(
    db: Executor,
    *,
    checkpoints: Sequence[CheckpointPut] = (),
    writes: Sequence[WritesPut] = (),
) -> int:
    """Save checkpoints with their new blobs and tasks' pending writes, of any threads, in one
    round trip and one transaction; returns how many checkpoints were saved.

    The result is that of saving them one by one in the given order: a checkpoint given twice
    is saved as the last one; a write key given twice keeps the last value among calls that
    replace, else the first. InvalidKey (nothing saved) if a key cannot be stored.
    """
    for c in checkpoints:
        check_checkpoint_put(c)
    for put in writes:
        check_writes_put(put)
    latest = {(c.thread_id, c.owner, c.checkpoint_ns, c.checkpoint_id): c for c in checkpoints}
    cps, blob_keys, blob_values = [], [], []
    for c in latest.values():
        cps.append(
            {
                "thread_id": c.thread_id,
                "owner": str(c.owner),
                "checkpoint_ns": c.checkpoint_ns,
                "checkpoint_id": c.checkpoint_id,
                "parent_checkpoint_id": c.parent_checkpoint_id,
                "checkpoint": c.checkpoint,
                "metadata": c.metadata,
            }
        )
        for b in c.blobs:
            blob_keys.append(
                {
                    "thread_id": c.thread_id,
                    "owner": str(c.owner),
                    "checkpoint_ns": c.checkpoint_ns,
                    "channel": b.channel,
                    "version": b.version,
                    "type": b.type,
                }
            )
            blob_values.append(b.value)
    rows: dict[tuple[str, UUID, str, str, str, int], tuple[WritesPut, Write]] = {}
    for put in writes:
        for w in put.writes:
            key = (
                put.thread_id,
                put.owner,
                put.checkpoint_ns,
                put.checkpoint_id,
                put.task_id,
                w.idx,
            )
            if put.replace or key not in rows:
                rows[key] = (put, w)
    write_keys = [
        {
            "thread_id": p.thread_id,
            "owner": str(p.owner),
            "checkpoint_ns": p.checkpoint_ns,
            "checkpoint_id": p.checkpoint_id,
            "task_id": p.task_id,
            "task_path": p.task_path,
            "idx": w.idx,
            "channel": w.channel,
            "type": w.type,
            "replace": p.replace,
        }
        for p, w in rows.values()
    ]
    saved = await fetch_value(
        db,
        Q["upsert_checkpoint_batch"],
        cps,
        blob_keys,
        blob_values,
        write_keys,
        [w.value for _, w in rows.values()],
    )
    return int(saved)


async def get_checkpoint(
    db: Executor, *, owner: UUID, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
) -> CheckpointRow:
    """One checkpoint (the newest of the namespace when ``checkpoint_id`` is None) with its
    blobs and writes; NotFound if there is none."""
    if checkpoint_id is None:
        row = await fetch_one(db, Q["get_checkpoint_latest"], owner, thread_id, checkpoint_ns)
    else:
        row = await fetch_one(
            db, Q["get_checkpoint_by_id"], owner, thread_id, checkpoint_ns, checkpoint_id
        )
    if row is None:
        raise NotFound("checkpoint", checkpoint_id or thread_id)
    return CheckpointRow.from_row(row)


async def get_latest_checkpoint_head(
    db: Executor, *, owner: UUID, thread_id: str, checkpoint_ns: str
) -> CheckpointHead | None:
    """Id, channel versions and step of the newest checkpoint of a namespace of the owner's
    thread; None if none."""
    row = await fetch_one(db, Q["get_latest_checkpoint_head"], owner, thread_id, checkpoint_ns)
    return None if row is None else CheckpointHead.from_row(row)


async def list_checkpoints(
    db: Executor,
    *,
    owner: UUID,
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata_filter: dict[str, Any] | None = None,
    limit: int | None = None,
) -> list[CheckpointRow]:
    """Checkpoints newest first (BaseCheckpointSaver.list's search), each kind of call by the
    query that serves it from an index: a thread namespace's history
    (list_checkpoints_in_namespace[_before], or by metadata), a thread's in every namespace, any
    other search in a thread (bounded by the thread), an owner's by metadata across threads;
    only searches across threads with a cursor, namespace or checkpoint id run the catch-all
    (each query is named list_checkpoints_...)."""
    if limit is not None and limit < 0:
        raise InvalidInput("limit must not be negative")
    if thread_id is not None:
        if checkpoint_id is None and checkpoint_ns is None and not metadata_filter:
            return await list_checkpoints_of_thread(
                db, owner=owner, thread_id=thread_id, before=before, limit=limit
            )
        if checkpoint_id is None and checkpoint_ns is not None and metadata_filter:
            return await list_checkpoints_by_metadata(
                db,
                owner=owner,
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                metadata_filter=metadata_filter,
                before=before,
                limit=limit,
            )
        if checkpoint_id is None and checkpoint_ns is not None and before is not None:
            rows = await fetch_all(
                db,
                Q["list_checkpoints_in_namespace_before"],
                owner,
                thread_id,
                checkpoint_ns,
                before,
                limit,
            )
            return CheckpointRow.from_rows(rows)
        if checkpoint_id is None and checkpoint_ns is not None:
            rows = await fetch_all(
                db, Q["list_checkpoints_in_namespace"], owner, thread_id, checkpoint_ns, limit
            )
            return CheckpointRow.from_rows(rows)
        return await list_checkpoints_of_thread_filtered(
            db,
            owner=owner,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            metadata_filter=metadata_filter,
            limit=limit,
        )
    if checkpoint_ns is None and checkpoint_id is None and before is None and metadata_filter:
        return await list_checkpoints_of_owner_by_metadata(
            db, owner=owner, metadata_filter=metadata_filter, limit=limit
        )
    return await list_checkpoints_of_owner_filtered(
        db,
        owner=owner,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        before=before,
        metadata_filter=metadata_filter,
        limit=limit,
    )


async def list_checkpoints_of_thread(
    db: Executor, *, owner: UUID, thread_id: str, before: str | None = None, limit: int | None
) -> list[CheckpointRow]:
    """A thread's checkpoints in every namespace, newest first, older than checkpoint
    ``before`` if given."""
    if before is None:
        rows = await fetch_all(db, Q["list_checkpoints_of_thread"], owner, thread_id, limit)
    else:
        rows = await fetch_all(
            db, Q["list_checkpoints_of_thread_before"], owner, thread_id, before, limit
        )
    return CheckpointRow.from_rows(rows)


async def list_checkpoints_by_metadata(
    db: Executor,
    *,
    owner: UUID,
    thread_id: str,
    checkpoint_ns: str,
    metadata_filter: dict[str, Any],
    before: str | None = None,
    limit: int | None,
) -> list[CheckpointRow]:
    """A thread namespace's checkpoints whose metadata contains ``metadata_filter``, newest
    first, older than checkpoint ``before`` if given."""
    if before is None:
        rows = await fetch_all(
            db,
            Q["list_checkpoints_by_metadata"],
            owner,
            thread_id,
            checkpoint_ns,
            metadata_filter,
            limit,
        )
    else:
        rows = await fetch_all(
            db,
            Q["list_checkpoints_by_metadata_before"],
            owner,
            thread_id,
            checkpoint_ns,
            metadata_filter,
            before,
            limit,
        )
    return CheckpointRow.from_rows(rows)


async def list_checkpoints_of_owner_by_metadata(
    db: Executor, *, owner: UUID, metadata_filter: dict[str, Any], limit: int | None
) -> list[CheckpointRow]:
    """The owner's checkpoints of every thread whose metadata contains ``metadata_filter``,
    newest first."""
    rows = await fetch_all(
        db, Q["list_checkpoints_of_owner_by_metadata"], owner, metadata_filter, limit
    )
    return CheckpointRow.from_rows(rows)


async def list_checkpoints_of_thread_filtered(
    db: Executor,
    *,
    owner: UUID,
    thread_id: str,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    metadata_filter: dict[str, Any] | None,
    limit: int | None,
) -> list[CheckpointRow]:
    """Any other search within one thread (None: no condition), newest first."""
    rows = await fetch_all(
        db,
        Q["list_checkpoints_of_thread_filtered"],
        owner,
        thread_id,
        checkpoint_ns,
        checkpoint_id,
        before,
        metadata_filter or None,
        limit,
    )
    return CheckpointRow.from_rows(rows)


async def list_checkpoints_of_owner_filtered(
    db: Executor,
    *,
    owner: UUID,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    metadata_filter: dict[str, Any] | None,
    limit: int | None,
) -> list[CheckpointRow]:
    """Any other search across the owner's threads (None: no condition), newest first. Its
    generic plan reads every checkpoint: for rare calls only."""
    rows = await fetch_all(
        db,
        Q["list_checkpoints_of_owner_filtered"],
        owner,
        checkpoint_ns,
        checkpoint_id,
        before,
        metadata_filter or None,
        limit,
    )
    return CheckpointRow.from_rows(rows)


async def list_delta_channel_history(
    db: Executor,
    *,
    owner: UUID,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str | None,
    channels: Sequence[str],
) -> list[DeltaHistoryRow]:
    """The writes to ``channels`` on the parent chain of a checkpoint (the newest of the
    namespace when ``checkpoint_id`` is None) back to each channel's seed, and the seeds,
    oldest first; empty if the checkpoint has no parent or does not exist."""
    rows = await fetch_all(
        db,
        Q["list_delta_channel_history"],
        owner,
        thread_id,
        checkpoint_ns,
        checkpoint_id,
        list(channels),
    )
    return DeltaHistoryRow.from_rows(rows)


async def delete_checkpoints_for_runs(db: Executor, *, owner: UUID, run_ids: Sequence[str]) -> int:
    """Delete the checkpoints (and their writes) these runs wrote in the owner's threads;
    returns how many."""
    if not run_ids:
        return 0
    return int(await fetch_value(db, Q["delete_checkpoints_for_runs"], owner, list(run_ids)))


async def copy_thread_of_owner(
    db: Executor,
    *,
    owner: UUID,
    source_thread_id: str,
    target_thread_id: str,
    latest_only: bool = False,
) -> int:
    """Copy the owner's thread's checkpoints (all, or the newest of each namespace) with what
    they need to another thread of the owner's, in one statement; returns how many checkpoints
    were copied."""
    check_key("thread id", target_thread_id)
    query = Q["copy_thread_of_owner_latest"] if latest_only else Q["copy_thread_of_owner_all"]
    return int(await fetch_value(db, query, owner, source_thread_id, target_thread_id))


async def find_delta_channel_threads(
    db: Executor, *, owner: UUID, thread_ids: Sequence[str]
) -> list[str]:
    """Which of these threads of the owner's use a LangGraph DeltaChannel."""
    rows = await fetch_all(db, Q["find_delta_channel_threads"], owner, list(thread_ids))
    return sorted(row["thread_id"] for row in rows)


async def delete_checkpoints_of_threads(
    db: Executor, *, owner: UUID, thread_ids: Sequence[str]
) -> int:
    """Prune "delete": every checkpoint of these threads of the owner's (the threads stay)."""
    if not thread_ids:
        return 0
    return int(await fetch_value(db, Q["delete_checkpoints_of_threads"], owner, list(thread_ids)))


async def delete_checkpoints_except_latest(
    db: Executor, *, owner: UUID, thread_ids: Sequence[str]
) -> int:
    """Prune "keep_latest": the newest checkpoint of each namespace stays, as a root."""
    if not thread_ids:
        return 0
    return int(
        await fetch_value(db, Q["delete_checkpoints_except_latest"], owner, list(thread_ids))
    )
