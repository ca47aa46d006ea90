"""LangGraph checkpoints as the saver stores them: values still serialized (dal.langgraph's
codec decodes them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
)

from dal.records.base import Row

# --- checkpoints ------------------------------------------------------------------------


class CheckpointRow(Row):
    """A stored checkpoint with its channel blobs and pending writes, as parallel arrays
    (NULL when there are none). Values are still serialized; dal.langgraph.codec decodes them."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    blob_channels: list[str] | None
    blob_types: list[str] | None
    blob_values: list[bytes | None] | None
    write_task_ids: list[str] | None
    write_channels: list[str] | None
    write_types: list[str | None] | None
    write_values: list[bytes] | None


class DeltaHistoryRow(Row):
    """Row of list_delta_channel_history: a write to a DeltaChannel on the path to a
    checkpoint, or (no task_id) the seed of one, its value the blob, else ``inline_value``."""

    depth: int
    channel: str
    task_path: str | None
    task_id: str | None
    idx: int | None
    type: str | None
    value: bytes | None
    inline_value: Any


class Blob(BaseModel):
    """One serialized channel value of a checkpoint, at the version it was written."""

    model_config = ConfigDict(frozen=True)
    channel: str
    version: str
    type: str
    value: bytes | None


class Write(BaseModel):
    """One serialized pending write of a task."""

    model_config = ConfigDict(frozen=True)
    idx: int
    channel: str
    type: str | None
    value: bytes


class CheckpointPut(BaseModel):
    """A checkpoint to save (without the values stored as blobs), with its new blobs."""

    model_config = ConfigDict(frozen=True)
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    blobs: Sequence[Blob] = ()
    # The thread's owner (thread ids are scoped per owner): a user's id, or the nil UUID.
    owner: UUID


class WritesPut(BaseModel):
    """A task's pending writes to save. ``replace``: a write already saved at the same index is
    overwritten (every write goes to a special channel); otherwise the first one saved stays."""

    model_config = ConfigDict(frozen=True)
    thread_id: str
    # The thread's owner, as in CheckpointPut.
    owner: UUID
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: Sequence[Write]
    replace: bool = False
