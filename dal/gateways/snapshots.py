"""Workspace snapshots, scoped by their owner (``user_id=``): save, get (restore), change,
delete, and list newest first (all, those matching a search, those of a conversation or of a
task). Another user's snapshot is NotFound, and so is a conversation the caller may not read
or a task that is not theirs."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import orjson

from dal.cursors import check_limit, decode_keyset, encode_keyset
from dal.database import Executor, Record, fetch_all, fetch_one
from dal.errors import InvalidInput, NotFound, TooLarge
from dal.ids import new_id
from dal.queries import Q
from dal.records.snapshots import (
    MAX_SNAPSHOT_BYTES,
    Snapshot,
    SnapshotDraft,
    SnapshotPage,
    SnapshotPatch,
    SnapshotSummary,
)

_SNAPSHOT_COLUMNS = tuple(Snapshot.model_fields)
# The keyset before the newest snapshot: every created_at is below infinity.
_START = (datetime.max.replace(tzinfo=UTC), UUID(int=0))
# A search pattern's length (it is matched as a substring; longer says nothing more).
MAX_QUERY_CHARS = 1000


def _snapshot(row: Record) -> Snapshot:
    return Snapshot.from_values({name: row[name] for name in _SNAPSHOT_COLUMNS})


def _check_size(panels: object, max_bytes: int) -> None:
    size = len(orjson.dumps(panels))
    if size > max_bytes:
        raise TooLarge(
            f"panels: a snapshot's panels hold at most {max_bytes} bytes as JSON, these are "
            f"{size} (APP_MAX_SNAPSHOT_BYTES)",
            code="snapshot_too_large",
        )


async def insert_snapshot(
    db: Executor,
    *,
    user_id: UUID,
    draft: SnapshotDraft,
    max_bytes: int = MAX_SNAPSHOT_BYTES,
) -> Snapshot:
    """Save a snapshot of the caller's workspace. TooLarge (snapshot_too_large) if its panels
    pass ``max_bytes`` as JSON (checked before anything is written); NotFound (and nothing
    written) if ``conversation_id`` names a conversation the caller may not read, or
    ``task_id`` a task that is not theirs."""
    _check_size(draft.panels, max_bytes)
    row = await fetch_one(
        db,
        Q["insert_snapshot"],
        user_id,
        new_id(),
        draft.name,
        draft.panels,
        draft.origin,
        draft.conversation_id,
        draft.task_id,
    )
    assert row is not None  # the statement always answers one row
    if not row["linked"]:
        raise NotFound("conversation", draft.conversation_id)
    if not row["task_linked"]:
        raise NotFound("task", draft.task_id)
    return _snapshot(row)


async def get_snapshot(db: Executor, *, user_id: UUID, snapshot_id: UUID) -> Snapshot:
    """One of the caller's snapshots, panels and all; NotFound if missing or another user's."""
    row = await fetch_one(db, Q["get_snapshot"], user_id, snapshot_id)
    if row is None:
        raise NotFound("snapshot", snapshot_id)
    return _snapshot(row)


async def update_snapshot(
    db: Executor,
    *,
    user_id: UUID,
    snapshot_id: UUID,
    patch: SnapshotPatch,
    max_bytes: int = MAX_SNAPSHOT_BYTES,
) -> Snapshot:
    """Rename a snapshot, replace its panels or (un)link its conversation or its task, in one
    statement. NotFound (and nothing changed) if the snapshot is missing or another user's,
    the conversation one the caller may not read, or the task not theirs; TooLarge as
    ``insert_snapshot``."""
    if patch.panels is not None:
        _check_size(patch.panels, max_bytes)
    relink = "conversation_id" in patch.model_fields_set
    retask = "task_id" in patch.model_fields_set
    row = await fetch_one(
        db,
        Q["update_snapshot"],
        user_id,
        snapshot_id,
        patch.name,
        patch.panels,
        relink,
        patch.conversation_id,
        retask,
        patch.task_id,
    )
    assert row is not None  # the statement always answers one row
    if not row["linked"]:
        raise NotFound("conversation", patch.conversation_id)
    if not row["task_linked"]:
        raise NotFound("task", patch.task_id)
    if row["id"] is None:
        raise NotFound("snapshot", snapshot_id)
    return _snapshot(row)


async def delete_snapshot(db: Executor, *, user_id: UUID, snapshot_id: UUID) -> None:
    """Delete one of the caller's snapshots; NotFound if missing or another user's."""
    if await fetch_one(db, Q["delete_snapshot"], user_id, snapshot_id) is None:
        raise NotFound("snapshot", snapshot_id)


def _after(cursor: str | None) -> tuple[datetime, UUID]:
    if not cursor:
        return _START
    created_at, key = decode_keyset(cursor)
    try:
        return created_at, UUID(key)
    except ValueError as exc:
        raise InvalidInput("cursor is not valid") from exc


async def list_snapshots(
    db: Executor,
    *,
    user_id: UUID,
    q: str | None = None,
    conversation_id: UUID | None = None,
    task_id: UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> SnapshotPage:
    """A page of the caller's snapshots, newest first, as summaries (no panels): those whose
    name or query text holds ``q`` (a substring, any case) when given, those linked to
    ``conversation_id`` and to ``task_id`` when given. Pass ``next_cursor`` back for the next
    page."""
    check_limit(limit)
    q = q or None
    if q is not None and len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q: a search holds at most {MAX_QUERY_CHARS} characters")
    if q is not None and "\x00" in q:
        raise InvalidInput("q: a search cannot hold a NUL character")
    after = _after(cursor)
    if task_id is not None:
        rows = await fetch_all(
            db,
            Q["list_snapshots_of_task"],
            user_id,
            task_id,
            conversation_id,
            q,
            *after,
            limit + 1,
        )
    elif conversation_id is not None:
        rows = await fetch_all(
            db, Q["list_snapshots_of_conversation"], user_id, conversation_id, q, *after, limit + 1
        )
    elif q:
        rows = await fetch_all(db, Q["list_snapshots_matching"], user_id, q, *after, limit + 1)
    else:
        rows = await fetch_all(db, Q["list_snapshots"], user_id, *after, limit + 1)
    items = SnapshotSummary.from_rows(rows[:limit])
    more = len(rows) > limit
    last = items[-1] if more else None
    return SnapshotPage.from_values(
        {
            "items": items,
            "next_cursor": None if last is None else encode_keyset(last.created_at, str(last.id)),
        }
    )
