"""Tasks: a user's (create, get, list, cancel; another user's task is NotFound) and the
workers' queue on the same table (claim, heartbeat, complete, fail). The lifecycle is the
database's: an illegal status change raises IllegalTransition whichever statement tries it
(README "Tasks", migration 20261207_03)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from dal.cursors import check_limit
from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.errors import InvalidInput, LeaseLost, NotFound
from dal.ids import new_id
from dal.queries import Q
from dal.records.tasks import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    TASK_ORDERS,
    TASK_STATUSES,
    Task,
    TaskDraft,
    TaskOrder,
    TaskPage,
    TaskStatus,
)

# The largest uuid: the keyset before a first page (newest first).
_FIRST = UUID(int=2**128 - 1)
# The keyset before a first page by priority: above every priority, then every id.
_FIRST_BY_PRIORITY = (MAX_PRIORITY + 1, _FIRST)
# The bounds a worker's lease takes, in seconds.
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 1.0, 86_400.0
# The most tasks one claim takes.
MAX_CLAIM = 1000
# A failure's backoff before the retry: BACKOFF_BASE_SECONDS * 2^(attempts - 1), at most
# BACKOFF_CAP_SECONDS (the defaults of fail_task).
BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS = 1.0, 3600.0


async def insert_task(db: Executor, *, user_id: UUID, draft: TaskDraft) -> Task:
    """Create a pending task of the caller's. NotFound if ``draft.conversation_id`` names a
    conversation the caller may not read (or none)."""
    row = await fetch_one(
        db,
        Q["insert_task"],
        new_id(),
        user_id,
        draft.kind,
        draft.title,
        draft.description,
        draft.priority,
        draft.input,
        draft.max_attempts,
        draft.conversation_id,
        draft.thread_id,
    )
    if row is None:
        raise NotFound("conversation", draft.conversation_id)
    return Task.from_row(row)


async def get_task(db: Executor, *, user_id: UUID, task_id: UUID) -> Task:
    """The caller's task. NotFound if there is no such task of theirs."""
    row = await fetch_one(db, Q["get_task"], user_id, task_id)
    if row is None:
        raise NotFound("task", task_id)
    return Task.from_row(row)


def encode_task_cursor(task: Task) -> str:
    """The opaque cursor of the page after ``task``, newest first: its id."""
    return _b64(task.id.bytes)


def decode_task_cursor(cursor: str) -> UUID:
    """The id inside a task cursor (newest first); InvalidInput if it is not one of ours (a
    cursor of the priority order is not: its length differs)."""
    try:
        return UUID(bytes=_unb64(cursor))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("cursor is not valid") from exc


def encode_task_priority_cursor(task: Task) -> str:
    """The opaque cursor of the page after ``task``, by priority: its priority (4 bytes,
    signed) then its id."""
    return _b64(task.priority.to_bytes(4, "big", signed=True) + task.id.bytes)


def decode_task_priority_cursor(cursor: str) -> tuple[int, UUID]:
    """The (priority, id) inside a task cursor of the priority order; InvalidInput if it is
    not one of ours (a cursor of the newest-first order is not: its length differs)."""
    try:
        raw = _unb64(cursor)
        if len(raw) != 20:
            raise ValueError("not a priority cursor")
        priority = int.from_bytes(raw[:4], "big", signed=True)
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:  # a task's, as every cursor is
            raise ValueError("priority out of range")
        return priority, UUID(bytes=raw[4:])
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("cursor is not valid") from exc


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def list_tasks(
    db: Executor,
    *,
    user_id: UUID,
    status: TaskStatus | None = None,
    kind: str | None = None,
    conversation_id: UUID | None = None,
    order: TaskOrder = "newest",
    limit: int = 50,
    cursor: str | None = None,
) -> TaskPage:
    """A page of the caller's tasks, newest first, or with ``order="priority"`` highest
    priority first (then newest); only ``status``, ``kind`` and tasks linked to
    ``conversation_id`` when given. Pass ``next_cursor`` back for the next page, with the same
    order (a cursor of the other order is InvalidInput)."""
    check_limit(limit)
    if status is not None and status not in TASK_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(TASK_STATUSES)}")
    if order not in TASK_ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(TASK_ORDERS)}")
    if order == "priority":
        return await _list_tasks_by_priority(
            db,
            user_id=user_id,
            status=status,
            kind=kind,
            conversation_id=conversation_id,
            limit=limit,
            cursor=cursor,
        )
    before = _FIRST if not cursor else decode_task_cursor(cursor)
    if conversation_id is not None:
        rows = await fetch_all(
            db,
            Q["list_tasks_of_conversation"],
            user_id,
            before,
            conversation_id,
            status,
            kind,
            limit + 1,
        )
    elif status is not None:
        rows = await fetch_all(
            db, Q["list_tasks_by_status"], user_id, before, status, kind, limit + 1
        )
    else:
        rows = await fetch_all(db, Q["list_tasks"], user_id, before, kind, limit + 1)
    items = Task.from_rows(rows[:limit])
    more = len(rows) > limit
    return TaskPage.from_values(
        {"items": items, "next_cursor": encode_task_cursor(items[-1]) if more else None}
    )


async def _list_tasks_by_priority(
    db: Executor,
    *,
    user_id: UUID,
    status: TaskStatus | None,
    kind: str | None,
    conversation_id: UUID | None,
    limit: int,
    cursor: str | None,
) -> TaskPage:
    after = _FIRST_BY_PRIORITY if not cursor else decode_task_priority_cursor(cursor)
    if conversation_id is not None:
        rows = await fetch_all(
            db,
            Q["list_tasks_of_conversation_by_priority"],
            user_id,
            *after,
            conversation_id,
            status,
            kind,
            limit + 1,
        )
    elif status is not None:
        rows = await fetch_all(
            db, Q["list_tasks_by_status_by_priority"], user_id, *after, status, kind, limit + 1
        )
    else:
        rows = await fetch_all(db, Q["list_tasks_by_priority"], user_id, *after, kind, limit + 1)
    items = Task.from_rows(rows[:limit])
    more = len(rows) > limit
    return TaskPage.from_values(
        {"items": items, "next_cursor": encode_task_priority_cursor(items[-1]) if more else None}
    )


async def cancel_task(db: Executor, *, user_id: UUID, task_id: UUID) -> Task:
    """Cancel the caller's pending or running task (its worker then loses it). NotFound if
    there is no such task of theirs; IllegalTransition if it has finished (succeeded or
    failed). Cancelling a cancelled task changes nothing."""
    row = await fetch_one(db, Q["cancel_task"], user_id, task_id)
    if row is None:
        raise NotFound("task", task_id)
    return Task.from_row(row)


def _lease(seconds: float) -> float:
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise InvalidInput(
            f"lease_seconds must be between {MIN_LEASE_SECONDS:g} and {MAX_LEASE_SECONDS:g}"
        )
    return float(seconds)


async def claim_tasks(
    db: Executor,
    *,
    kinds: Sequence[str],
    worker: str,
    lease_seconds: float = 60.0,
    limit: int = 1,
) -> list[Task]:
    """Claim up to ``limit`` runnable pending tasks of ``kinds`` for ``worker``: highest
    effective priority first (priority plus one per minute waited since ``run_after``), then
    oldest; each is set running with a lease of ``lease_seconds`` and one more attempt. Tasks
    other workers are claiming are skipped, never taken twice. The same statement first
    returns tasks whose lease expired to the queue (claimable from the next claim on) or fails
    them when their attempts are used up. An empty list: nothing to do now."""
    if not 1 <= limit <= MAX_CLAIM:
        raise InvalidInput(f"limit must be between 1 and {MAX_CLAIM}")
    if not worker:
        raise InvalidInput("worker must name the worker")
    rows = await fetch_all(
        db, Q["claim_tasks"], list(dict.fromkeys(kinds)), worker, _lease(lease_seconds), limit
    )
    return Task.from_rows(rows)


async def heartbeat_task(
    db: Executor, *, task_id: UUID, worker: str, lease_seconds: float = 60.0
) -> Task:
    """Extend ``worker``'s lease on a task to ``lease_seconds`` from now. LeaseLost if the
    worker no longer holds it (the lease expired, or the task was cancelled or re-claimed)."""
    row = await fetch_one(db, Q["heartbeat_task"], task_id, worker, _lease(lease_seconds))
    if row is None:
        raise LeaseLost(f"worker {worker!r} does not hold task {task_id}")
    return Task.from_row(row)


async def complete_task(db: Executor, *, task_id: UUID, worker: str, result: Any = None) -> Task:
    """The task succeeded with ``result`` (any JSON value). LeaseLost, and nothing changed, if
    ``worker`` no longer holds it."""
    row = await fetch_one(db, Q["complete_task"], task_id, worker, result)
    if row is None:
        raise LeaseLost(f"worker {worker!r} does not hold task {task_id}")
    return Task.from_row(row)


async def complete_tasks(db: Executor, *, worker: str, results: Mapping[UUID, Any]) -> list[Task]:
    """Complete many tasks in one statement (one commit): each id of ``results`` succeeded
    with its result. Returns the tasks completed; a task ``worker`` no longer holds is left
    out, unchanged (what ``complete_task`` raises LeaseLost for). At most MAX_CLAIM at once."""
    if len(results) > MAX_CLAIM:
        raise InvalidInput(f"complete at most {MAX_CLAIM} tasks at once")
    if not results:
        return []
    rows = await fetch_all(db, Q["complete_tasks"], list(results), worker, list(results.values()))
    return Task.from_rows(rows)


async def fail_task(
    db: Executor,
    *,
    task_id: UUID,
    worker: str,
    error: Any,
    retry: bool = True,
    backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
    backoff_cap_seconds: float = BACKOFF_CAP_SECONDS,
) -> Task:
    """The task's attempt failed with ``error`` (any JSON value). With ``retry`` and attempts
    left it goes back to pending, runnable after ``backoff_base_seconds * 2^(attempts - 1)``
    seconds (at most ``backoff_cap_seconds``); otherwise it is failed for good. LeaseLost, and
    nothing changed, if ``worker`` no longer holds it."""
    if not 0 <= backoff_base_seconds <= backoff_cap_seconds <= MAX_LEASE_SECONDS:
        raise InvalidInput("backoff: 0 <= base <= cap <= 86400 seconds")
    row = await fetch_one(
        db,
        Q["fail_task"],
        task_id,
        worker,
        error,
        retry,
        float(backoff_base_seconds),
        float(backoff_cap_seconds),
    )
    if row is None:
        raise LeaseLost(f"worker {worker!r} does not hold task {task_id}")
    return Task.from_row(row)


async def release_task(db: Executor, *, task_id: UUID, worker: str) -> Task:
    """Give the task back to the queue as it was before ``worker`` claimed it: pending,
    runnable now, the attempt its claim counted undone (a worker stopping is not the task's
    failure). LeaseLost, and nothing changed, if ``worker`` no longer holds it."""
    row = await fetch_one(db, Q["release_task"], task_id, worker)
    if row is None:
        raise LeaseLost(f"worker {worker!r} does not hold task {task_id}")
    return Task.from_row(row)


async def get_task_wait(db: Executor, *, kinds: Sequence[str]) -> float | None:
    """Seconds from now until a claim of ``kinds`` may find work, for a worker whose claim
    just found none: the earliest end of a backoff among their pending tasks, or of a lease
    among their running ones (0 or less: now; None: no such task). Past 100 tasks of a kind in
    backoff it may be later than the truth: poll as well."""
    wait: float | None = await fetch_value(db, Q["get_task_wait"], list(dict.fromkeys(kinds)))
    return wait
