"""Retention's statements (queries/retention.sql): unscoped, bounded, each run in a batch
transaction of ``dal.usecases.retention``. The ``list_..._locked`` functions lock what they
return until that transaction ends; every ``delete_`` deletes at most ``batch`` rows of each
table it deletes from and says how many went."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.queries import Q


class ExpiredThread(NamedTuple):
    thread_id: str
    owner: UUID
    updated_at: datetime
    cutoff: datetime


class TrimmedThread(NamedTuple):
    thread_id: str
    owner: UUID
    keep: int


class ExpiredConversation(NamedTuple):
    id: UUID
    updated_at: datetime
    cutoff: datetime


class Counts(NamedTuple):
    checkpoints: int
    blobs: int
    writes: int


class Swept(NamedTuple):
    blobs: int
    writes: int


async def list_expired_threads_locked(
    db: Executor,
    *,
    thread_days: int,
    now: datetime,
    after: tuple[datetime, str, UUID],
    batch: int,
    overrides: bool = True,
) -> list[ExpiredThread]:
    """Up to ``batch`` expired threads after the cursor ``after``, oldest activity first, locked
    FOR UPDATE (those a writer holds skipped), each with its cutoff (the metadata overrides
    honoured unless ``overrides`` is False)."""
    rows = await fetch_all(
        db, Q["list_expired_threads_locked"], thread_days, now, *after, batch, overrides
    )
    return [ExpiredThread(r["thread_id"], r["owner"], r["updated_at"], r["cutoff"]) for r in rows]


async def delete_expired_thread_rows(
    db: Executor, *, threads: Sequence[ExpiredThread], batch: int
) -> Counts:
    """Up to ``batch`` checkpoints, blobs and writes each of these locked threads, those still
    expired."""
    row = await fetch_one(
        db,
        Q["delete_expired_thread_rows"],
        [t.thread_id for t in threads],
        [t.owner for t in threads],
        [t.cutoff for t in threads],
        batch,
    )
    assert row is not None
    return Counts(row["checkpoints"], row["blobs"], row["writes"])


async def delete_expired_threads(db: Executor, *, threads: Sequence[ExpiredThread]) -> int:
    """Delete those of these locked threads still expired with nothing left; how many went."""
    deleted: int = await fetch_value(
        db,
        Q["delete_expired_threads"],
        [t.thread_id for t in threads],
        [t.owner for t in threads],
        [t.cutoff for t in threads],
    )
    return deleted


async def list_threads_for_trimming_locked(
    db: Executor,
    *,
    keep_checkpoints: int,
    thread_days: int | None,
    now: datetime,
    after: tuple[str, UUID],
    batch: int,
    again: bool = False,
    overrides: bool = True,
) -> list[TrimmedThread]:
    """Up to ``batch`` threads after ``after`` in key order with the checkpoints each keeps
    (exempt ones, those ``thread_days`` finds expired and those with no more checkpoints than
    they keep left out; with ``again`` the thread at ``after`` too, whatever it holds), locked
    FOR NO KEY UPDATE (those a writer holds skipped)."""
    rows = await fetch_all(
        db,
        Q["list_threads_for_trimming_locked"],
        keep_checkpoints,
        thread_days or 0,
        now,
        *after,
        batch,
        again,
        overrides,
    )
    return [TrimmedThread(r["thread_id"], r["owner"], r["keep"]) for r in rows]


async def delete_excess_checkpoints(
    db: Executor, *, threads: Sequence[TrimmedThread], now: datetime, batch: int
) -> int:
    """Keep-N: up to ``batch`` checkpoints of these locked threads beyond what each keeps."""
    deleted: int = await fetch_value(
        db,
        Q["delete_excess_checkpoints"],
        [t.thread_id for t in threads],
        [t.owner for t in threads],
        [t.keep for t in threads],
        now,
        batch,
    )
    return deleted


async def delete_trim_leftovers(
    db: Executor, *, threads: Sequence[TrimmedThread], batch: int
) -> Swept:
    """After ``delete_excess_checkpoints`` in the same transaction: these locked threads'
    checkpoints whose parent went made roots, and up to ``batch`` blobs no checkpoint
    references and up to ``batch`` writes older than their namespace's oldest checkpoint
    deleted."""
    row = await fetch_one(
        db,
        Q["delete_trim_leftovers"],
        [t.thread_id for t in threads],
        [t.owner for t in threads],
        batch,
    )
    assert row is not None
    return Swept(row["blobs"], row["writes"])


async def list_expired_conversations_locked(
    db: Executor,
    *,
    conversation_days: int,
    now: datetime,
    after: tuple[datetime, UUID],
    batch: int,
    overrides: bool = True,
) -> list[ExpiredConversation]:
    """Expired conversations after ``after``, oldest activity first, locked FOR UPDATE (those a
    writer holds skipped): up to ``batch``, fewer when their messages would pass ``batch``."""
    rows = await fetch_all(
        db,
        Q["list_expired_conversations_locked"],
        conversation_days,
        now,
        *after,
        batch,
        overrides,
    )
    return [ExpiredConversation(r["id"], r["updated_at"], r["cutoff"]) for r in rows]


async def delete_expired_conversations(
    db: Executor, *, conversations: Sequence[ExpiredConversation]
) -> tuple[int, int]:
    """Delete those of these locked conversations still expired: (conversations, messages)."""
    row = await fetch_one(
        db,
        Q["delete_expired_conversations"],
        [c.id for c in conversations],
        [c.cutoff for c in conversations],
    )
    assert row is not None
    return row["conversations"], row["messages"]


async def lock_retention_runner(db: Executor, *, key: int) -> bool:
    """Take the runner's session advisory lock if free (on a connection outside the pool)."""
    taken: bool = await fetch_value(db, Q["lock_retention_runner"], key)
    return taken


async def unlock_retention_runner(db: Executor, *, key: int) -> bool:
    """Give the runner's lock up."""
    released: bool = await fetch_value(db, Q["unlock_retention_runner"], key)
    return released
