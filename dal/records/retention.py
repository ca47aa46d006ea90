"""Retention (README "Retention"): the policies a run enforces and what it reports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from dal.records.base import Row


class RetentionPolicy(BaseModel):
    """What a retention run deletes; each policy off (None) unless set. From the settings
    (``RETENTION_*``) by ``dal.usecases.retention.policy_of``, or built directly."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    # Delete a thread (checkpoints, blobs, writes) with no activity for this many days.
    thread_days: int | None = Field(default=None, ge=1, le=1_000_000)
    # Keep at most this many checkpoints per thread and namespace (and what they need).
    keep_checkpoints: int | None = Field(default=None, ge=1, le=2**31 - 1)
    # Delete a conversation (its messages...) with no activity for this many days.
    conversation_days: int | None = Field(default=None, ge=1, le=1_000_000)
    # Honour the "retention" objects of metadata (RETENTION_OVERRIDES=metadata); False: the
    # settings bind every row, whatever its metadata or its user's says.
    overrides: bool = True

    @property
    def enabled(self) -> bool:
        return (
            self.thread_days is not None
            or self.keep_checkpoints is not None
            or self.conversation_days is not None
        )


class RetentionReport(Row):
    """What a run deleted (or with ``dry_run``, would have), per kind of row: ``threads``
    and ``conversations`` whole, ``checkpoints``/``checkpoint_blobs``/``checkpoint_writes``
    of expired threads and of trimmed ones, ``messages`` of the conversations deleted.
    ``now`` is the run's clock; ``batches`` the transactions it took; ``seconds`` its wall
    time so far, of which ``rested_seconds`` resting between batches (RETENTION_PAUSE_RATIO)."""

    now: datetime
    dry_run: bool
    threads: int
    checkpoints: int
    checkpoint_blobs: int
    checkpoint_writes: int
    conversations: int
    messages: int
    batches: int
    seconds: float
    rested_seconds: float
