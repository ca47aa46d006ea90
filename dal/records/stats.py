"""Storage stats (README "Storage stats"): what the database holds, where, and since when."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from dal.records.base import Row


class TableStats(Row):
    """A table's rows and bytes. ``rows`` is exact when ``rows_exact``, else the planner's
    estimate (pg_class.reltuples). Bytes: the table itself, its TOAST (large values stored
    out of line), its indexes, and the total of the three."""

    table_name: str
    rows: int
    rows_exact: bool
    table_bytes: int
    toast_bytes: int
    index_bytes: int
    total_bytes: int


class UserStats(Row):
    """What one user holds: conversations they own and the messages in them, their
    checkpoints, and their files' bytes."""

    user_id: UUID
    username: str
    conversations: int
    messages: int
    checkpoints: int
    attachment_bytes: int


class ThreadStats(Row):
    """A thread's checkpoints (every namespace), and their oldest and newest time."""

    thread_id: str
    user_id: UUID
    checkpoints: int
    oldest_at: datetime
    newest_at: datetime


class OldestData(Row):
    """The oldest data: oldest checkpoint, message and conversation; the conversation and
    thread idle the longest (their newest activity). None when there is none."""

    oldest_checkpoint_at: datetime | None
    oldest_message_at: datetime | None
    oldest_conversation_at: datetime | None
    stalest_conversation_at: datetime | None
    stalest_thread_at: datetime | None


class RetentionPreview(Row):
    """The retention policies in force (``policy``: RETENTION_THREAD_DAYS as thread_days,
    RETENTION_KEEP_CHECKPOINTS as keep_checkpoints, RETENTION_CONVERSATION_DAYS as
    conversation_days; None is off; RETENTION_OVERRIDES=metadata as overrides true) and what
    they would delete now, per kind of row (their
    dry run; all 0 when every policy is off; None when not asked for, the dry run costing as
    much as a run)."""

    policy: dict[str, bool | int | None]
    threads: int | None
    checkpoints: int | None
    checkpoint_blobs: int | None
    checkpoint_writes: int | None
    conversations: int | None
    messages: int | None


class Stats(Row):
    """The storage stats: tables biggest first, the ``top`` users and threads, the oldest
    data, the retention policies in force and what they would delete now."""

    tables: list[TableStats]
    total_bytes: int
    users: list[UserStats]
    threads: list[ThreadStats]
    oldest: OldestData
    retention: RetentionPreview
    top: int
    exact_rows_below: int
