"""Messages and their parts (the Vercel AI SDK's UI message parts)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

from dal.records.base import (
    ATTACHMENT_PATH,
    INPUT,
    NOT_NULL,
    ListPage,
    Metadata,
    Patch,
    Row,
    check_json,
    not_null,
)

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["complete", "streaming"]

# Required string fields of the Vercel AI SDK UI message part types Mnemo knows. Parts are
# stored exactly as given (every other key is kept); unknown types are kept too.
PART_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "reasoning": ("text",),
    "dynamic-tool": ("toolName", "toolCallId", "state"),
    "file": ("mediaType", "url"),
    "source-url": ("sourceId", "url"),
    "source-document": ("sourceId", "mediaType", "title"),
    "step-start": (),
}
TOOL_FIELDS = ("toolCallId", "state")


# The id at the end of a file part's url that references an attachment: a relative
# "/v1/attachments/<id>" or an absolute URL whose path ends so (a query or fragment may follow).
_ATTACHMENT_URL = re.compile(
    re.escape(ATTACHMENT_PATH)
    + r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    + r"(?:[?#].*)?\Z",
    re.DOTALL,
)


def _file_reference(part: dict[str, JsonValue]) -> UUID | None:
    """The attachment a `file` part references: its ``attachmentId``, or the id its ``url``
    names; ValueError when they disagree or ``attachmentId`` is not an id."""
    url = part.get("url")
    found = _ATTACHMENT_URL.search(url) if isinstance(url, str) else None
    by_url = UUID(found.group(1)) if found else None
    given = part.get("attachmentId")
    if given is None:
        return by_url
    try:
        if not isinstance(given, str):
            raise ValueError
        by_id = UUID(given)
    except ValueError:
        raise ValueError("a file part's 'attachmentId' must be an attachment's id") from None
    if by_url is not None and by_url != by_id:
        raise ValueError("a file part's 'attachmentId' and 'url' name different attachments")
    return by_id


def referenced_attachments(parts: Sequence[Mapping[str, Any]]) -> list[UUID]:
    """The attachments the `file` parts reference (README "Attachments"), distinct, sorted."""
    found = {
        ref
        for part in parts
        if part.get("type") == "file" and (ref := _file_reference(dict(part))) is not None
    }
    return sorted(found)


def _check_part(part: dict[str, JsonValue]) -> dict[str, JsonValue]:
    kind = part.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("each part needs a non-empty string 'type'")
    if kind in PART_FIELDS:
        required = PART_FIELDS[kind]
    elif kind.startswith("tool-") and len(kind) > len("tool-"):
        required = TOOL_FIELDS
    elif kind.startswith("data-") and len(kind) > len("data-"):
        if "data" not in part:
            raise ValueError(f"a {kind!r} part needs a 'data' field")
        required = ()
    else:
        required = ()
    for field in required:
        if not isinstance(part.get(field), str):
            raise ValueError(f"a {kind!r} part needs a string {field!r} field")
    if kind == "file":
        _file_reference(part)
    return part


Part = Annotated[dict[str, JsonValue], AfterValidator(_check_part), AfterValidator(check_json)]

# --- messages ---------------------------------------------------------------------------


class Message(Row):
    id: UUID
    conversation_id: UUID
    seq: int
    role: Role
    parts: list[dict[str, Any]]
    content: str
    metadata: dict[str, Any]
    status: MessageStatus
    # The member who wrote it (an agent writes with its own user's token); history from
    # before senders were kept was given its conversation's owner.
    sender_id: UUID | None
    reply_to: UUID | None
    # The message it follows on its branch (None for the first); see README "Branches".
    parent_seq: int | None
    # The chat session it belongs to (README "Chat sessions"); None for messages before them.
    session_no: int | None
    # Why the message breaks tool-call pairing, when its conversation flags rather than
    # rejects (README "Tool-call integrity"): 'unanswered_tool_call' or 'unknown_tool_result'.
    integrity: Literal["unanswered_tool_call", "unknown_tool_result"] | None
    feedback_up: int
    feedback_down: int
    edited_at: datetime | None
    retracted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MessageDraft(BaseModel):
    """A message to append. Give ``id`` to make retries idempotent."""

    model_config = INPUT
    id: UUID | None = None
    role: Role
    parts: list[Part]
    metadata: Metadata = Field(default_factory=dict)
    status: MessageStatus = "complete"
    # The message of the conversation this one replies to (a quote, not a branch).
    reply_to: UUID | None = None
    # The message this one follows, when it is not the active leaf: the new message starts a
    # branch there (an edited question, a regenerated answer). None: after the active leaf.
    parent_id: UUID | None = None


class MessagePatch(Patch):
    """An edit: replace ``parts``, append ``append_parts`` (streaming only), replace
    ``metadata``, set ``status`` (``complete`` finalizes a streaming message). An absent field
    stays as it is; none can be null (``[]`` or ``{}`` empties parts or metadata)."""

    parts: list[Part] | None = NOT_NULL
    append_parts: list[Part] | None = NOT_NULL
    metadata: Metadata | None = NOT_NULL
    status: MessageStatus | None = NOT_NULL

    @field_validator("parts", "append_parts", "metadata", "status")
    @classmethod
    def _message_field_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        return not_null(value, info)


class Appended(Row):
    """The result of an append: ``created`` is False when the id was already there (a retry)."""

    message: Message
    created: bool


class MessagePage(ListPage[Message]):
    """Messages in ``seq`` order; ``has_more`` when more follow in the direction read."""


# --- edits (README "Edits and retraction") ----------------------------------------------


class MessageVersion(Row):
    """An earlier version of an edited message: what it held before an edit replaced it.
    ``written_at``/``written_by``: when and by whom this version was written (the message's
    ``created_at`` and sender for version 1, else the edit that made it)."""

    message_id: UUID
    seq: int
    version: int
    parts: list[dict[str, Any]]
    content: str
    metadata: dict[str, Any]
    written_at: datetime
    written_by: UUID | None


class MessageVersionPage(ListPage[MessageVersion]):
    """Earlier versions of a message, oldest first; ``has_more`` when newer ones follow."""
