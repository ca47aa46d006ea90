"""Workspace snapshots: a user's named panels documents (each panel, say, a chart or table,
with the query that produced it), saved by hand or automatically, searched and restored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dal.records.base import INPUT, NOT_NULL, CursorPage, Patch, Row, check_json, not_null

Origin = Literal["auto", "manual"]

# A name's length (the migration's CHECK holds it too).
MAX_NAME_CHARS = 200
# The default of APP_MAX_SNAPSHOT_BYTES: the panels document, as compact JSON, in bytes.
MAX_SNAPSHOT_BYTES = 1024 * 1024

# Text PostgreSQL can store: no NUL character.
SnapshotName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, pattern="^[^\\x00]*$")
]
# The panels: a JSON array of objects, stored as sent. A panel's "query", when it is a string,
# is what search reads (query_text); any other key is the client's.
Panels = Annotated[list[dict[str, JsonValue]], AfterValidator(check_json)]


class SnapshotSummary(Row):
    """A snapshot as lists show it: without its panels (``panel_count`` says how many)."""

    id: UUID
    name: str
    origin: Origin
    # The conversation it was saved with, if any (unlinked when that conversation is deleted).
    conversation_id: UUID | None
    # The task it was saved with, if any (unlinked when that task is deleted).
    task_id: UUID | None
    panel_count: int
    created_at: datetime
    updated_at: datetime


class Snapshot(SnapshotSummary):
    """A whole snapshot: its panels as saved, and ``query_text``, the panels' string queries
    one per line (what search reads; derived, never written)."""

    panels: list[dict[str, Any]]
    query_text: str


class SnapshotDraft(BaseModel):
    """A snapshot to save: ``name``, ``panels`` (at most APP_MAX_SNAPSHOT_BYTES as JSON),
    ``origin`` ("manual" unless an agent or the client saved it by itself: "auto"), and
    optionally the ``conversation_id`` of a conversation the caller may read and the
    ``task_id`` of one of the caller's tasks."""

    model_config = INPUT
    name: SnapshotName
    panels: Panels
    origin: Origin = "manual"
    conversation_id: UUID | None = None
    task_id: UUID | None = None


class SnapshotPatch(Patch):
    """Fields to change; an absent field stays as it is. ``name`` and ``panels`` cannot be
    null; a null ``conversation_id`` or ``task_id`` unlinks the snapshot from it."""

    name: SnapshotName | None = NOT_NULL
    panels: Panels | None = NOT_NULL
    conversation_id: UUID | None = None
    task_id: UUID | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:  # a null conversation_id or task_id is a change
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self

    @field_validator("name", "panels")
    @classmethod
    def _snapshot_field_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        return not_null(value, info)


class SnapshotPage(CursorPage[SnapshotSummary]):
    """A page of snapshots, newest first (by ``created_at``); pass ``next_cursor`` back for the
    next page (None on the last one)."""
