"""Agent threads as the HTTP API shows them: checkpoints as JSON state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    JsonValue,
    StringConstraints,
)

from dal.records.base import INPUT, CursorPage, Metadata, Row, ThreadId, check_json

# --- agent threads (the HTTP view of checkpoints) ----------------------------------------

# A checkpoint namespace ("" for the root graph, "node:task_id" for a subgraph).
CheckpointNs = Annotated[str, StringConstraints(max_length=200)]
# A channel name of a JSON state (a key of ``values``).
Channel = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Thread(Row):
    thread_id: str
    user_id: UUID
    conversation_id: UUID | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ThreadPage(CursorPage[Thread]):
    """A page of the caller's threads, most recently updated first."""


class PendingWrite(Row):
    """A write a task made after its checkpoint, not yet part of a newer checkpoint."""

    task_id: str
    channel: str
    value: JsonValue


class ThreadState(Row):
    """A checkpoint as JSON: channel values and pending writes decoded (LangGraph's
    serialized values too) and converted to JSON values."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    # The checkpoint's own timestamp ("ts"); None if it has none that parses.
    created_at: datetime | None
    metadata: dict[str, JsonValue]
    values: dict[str, JsonValue]
    pending_writes: list[PendingWrite]


class ThreadHistory(Row):
    items: list[ThreadState]


class ThreadStateDraft(BaseModel):
    """A new checkpoint of JSON state: ``values`` is the whole state, one channel per key."""

    model_config = INPUT
    values: Annotated[dict[Channel, JsonValue], AfterValidator(check_json)]
    metadata: Metadata = Field(default_factory=dict)
    checkpoint_ns: CheckpointNs = ""
    # Link the thread to this conversation of the caller's.
    conversation_id: UUID | None = None


class SavedCheckpoint(Row):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str


class CheckpointHead(Row):
    """What a new checkpoint needs of its parent (row of get_latest_checkpoint_head)."""

    checkpoint_id: str
    channel_versions: dict[str, Any] | None
    step: Any


class ThreadCopy(BaseModel):
    model_config = INPUT
    target_thread_id: ThreadId
    latest_only: bool = False


class CopyTarget(Row):
    """Row of insert_thread_copy: whether the source is the caller's, and whether the target
    was created (False: the id is taken)."""

    source_found: bool
    created: bool


class CopiedThread(Row):
    thread_id: str
    copied: int


class ThreadPatch(BaseModel):
    """A thread's new metadata, replacing the old whole (``{}`` empties it; not null). Its
    ``retention`` object overrides the retention policies for the thread (README
    "Retention")."""

    model_config = INPUT
    metadata: Metadata


class ThreadPrune(BaseModel):
    model_config = INPUT
    strategy: Literal["keep_latest", "delete"]


class Pruned(Row):
    deleted: int
