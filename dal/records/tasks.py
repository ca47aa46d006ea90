"""Tasks: work a user submits and a worker runs, with the lifecycle the database enforces
(README "Tasks")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints

from dal.records.base import INPUT, CursorPage, JsonObject, Row, ThreadId, whole_number

TaskStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
TASK_STATUSES: tuple[TaskStatus, ...] = ("pending", "running", "succeeded", "failed", "cancelled")
# The orders of a list of tasks: newest first, or highest priority first (then newest).
TaskOrder = Literal["newest", "priority"]
TASK_ORDERS: tuple[TaskOrder, ...] = ("newest", "priority")

# The bounds of the migration's CHECK constraints (20261207_03), checked here first.
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
MAX_ATTEMPTS = 100
# A kind names what a worker runs: short, printable, no spaces (it reaches tasks_queue_idx).
Kind = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\w.:/-]+$")]
# Text PostgreSQL can store: no NUL character.
Title = Annotated[str, StringConstraints(max_length=1000, pattern="^[^\\x00]*$")]
Description = Annotated[str, StringConstraints(max_length=20000, pattern="^[^\\x00]*$")]


class TaskDraft(BaseModel):
    """A task to create: ``kind`` (what a worker runs), ``title``, ``description``,
    ``priority`` (higher runs first; -1000 to 1000), ``input`` (a JSON object for the worker),
    ``max_attempts`` (1 to 100), optionally a ``conversation_id`` the caller may read and a
    LangGraph ``thread_id``."""

    model_config = INPUT
    kind: Kind
    title: Title = ""
    description: Description = ""
    # (BeforeValidator: JSON's 5.0 is the integer 5)
    priority: Annotated[int, BeforeValidator(whole_number)] = Field(
        default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY
    )
    input: JsonObject = Field(default_factory=dict)
    max_attempts: Annotated[int, BeforeValidator(whole_number)] = Field(
        default=3, ge=1, le=MAX_ATTEMPTS
    )
    conversation_id: UUID | None = None
    thread_id: ThreadId | None = None


class Task(Row):
    """A task and where it is in its lifecycle: ``status``, ``attempts`` (claims so far),
    ``result`` (on success) or ``error`` (the last failure), the worker and lease of a running
    task, and the time of each transition."""

    id: UUID
    user_id: UUID
    kind: str
    title: str
    description: str
    priority: int
    input: dict[str, Any]
    result: Any
    error: Any
    status: TaskStatus
    attempts: int
    max_attempts: int
    # Not claimable before this (now at creation; later after a failure's backoff).
    run_after: datetime
    lease_until: datetime | None
    worker: str | None
    conversation_id: UUID | None
    thread_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    updated_at: datetime


class TaskPage(CursorPage[Task]):
    """A page of the caller's tasks, newest first (or highest priority first, as asked); pass
    ``next_cursor`` back for the next page, in the same order (None on the last one)."""
