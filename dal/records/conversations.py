"""Conversations: a user's chats, listed newest first by keyset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dal.records.base import INPUT, NOT_NULL, CursorPage, Metadata, Patch, Row, ThreadId, not_null

Title = Annotated[str, Field(max_length=1000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=100)]
ConversationKind = Literal["direct", "group"]
ToolIntegrity = Literal["off", "flag", "reject"]


class Conversation(Row):
    id: UUID
    user_id: UUID
    title: str
    metadata: dict[str, Any]
    tags: list[str]
    thread_id: str | None
    version: int
    message_count: int
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # 'direct' (two members at most) or 'group'; user_id above is its owner member.
    kind: ConversationKind
    member_count: int
    # The seq of the active branch's last message (README "Branches"); None when empty.
    leaf_seq: int | None
    # What an append that breaks tool-call pairing gets (README "Tool-call integrity").
    tool_integrity: ToolIntegrity


class ConversationDraft(BaseModel):
    model_config = INPUT
    id: UUID | None = None
    title: Title = ""
    metadata: Metadata = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    thread_id: ThreadId | None = None
    kind: ConversationKind = "group"


class ConversationPatch(Patch):
    """Fields to change; an absent field stays as it is. ``title``, ``metadata`` and ``tags``
    cannot be null (send ``""``, ``{}`` or ``[]`` to empty them)."""

    title: Title | None = NOT_NULL
    metadata: Metadata | None = NOT_NULL
    tags: Tags | None = NOT_NULL
    # The thread of the user's that serves this conversation; null unlinks it.
    thread_id: ThreadId | None = None
    tool_integrity: ToolIntegrity | None = NOT_NULL

    @model_validator(mode="after")
    def _not_empty(self) -> Self:  # replaces Patch's: a null thread_id is a change
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self

    @field_validator("title", "metadata", "tags", "tool_integrity")
    @classmethod
    def _conversation_field_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        return not_null(value, info)


class CreatedConversation(Row):
    """The result of a create: ``created`` is False when the id was already there (a retry)."""

    conversation: Conversation
    created: bool


class ConversationPage(CursorPage[Conversation]):
    """A page of the caller's conversations, most recently updated first."""
