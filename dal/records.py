"""Pydantic records: drafts and patches (inputs, strict) and rows (outputs, frozen).

Both forbid extra fields. Output rows are built from trusted database rows; a catalog test
checks that every query's columns match the fields of the record it is mapped to.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["complete", "streaming"]

_ROW = ConfigDict(frozen=True, extra="forbid")
# NaN and Infinity are not JSON: the jsonb codec would silently write them as null.
_INPUT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

# Required string fields of the Vercel AI SDK UI message part types Mnemo knows. Parts are
# stored exactly as given (every other key is kept); unknown types are kept too.
_PART_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "reasoning": ("text",),
    "dynamic-tool": ("toolName", "toolCallId", "state"),
    "file": ("mediaType", "url"),
    "source-url": ("sourceId", "url"),
    "source-document": ("sourceId", "mediaType", "title"),
    "step-start": (),
}
_TOOL_FIELDS = ("toolCallId", "state")


def _check_part(part: dict[str, JsonValue]) -> dict[str, JsonValue]:
    kind = part.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("each part needs a non-empty string 'type'")
    if kind in _PART_FIELDS:
        required = _PART_FIELDS[kind]
    elif kind.startswith("tool-") and len(kind) > len("tool-"):
        required = _TOOL_FIELDS
    elif kind.startswith("data-") and len(kind) > len("data-"):
        if "data" not in part:
            raise ValueError(f"a {kind!r} part needs a 'data' field")
        required = ()
    else:
        required = ()
    for field in required:
        if not isinstance(part.get(field), str):
            raise ValueError(f"a {kind!r} part needs a string {field!r} field")
    return part


Part = Annotated[dict[str, JsonValue], AfterValidator(_check_part)]
Metadata = dict[str, JsonValue]
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _check_username(value: str) -> str:
    value = value.strip().lower()
    if not _USERNAME.match(value):
        raise ValueError(
            "a username is 1-64 characters: letters, digits, '_', '.', '-'; "
            "it starts with a letter or digit"
        )
    return value


# Usernames are case-insensitive: stored lower-cased.
Username = Annotated[str, AfterValidator(_check_username)]
Title = Annotated[str, Field(max_length=1000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=100)]
DisplayName = Annotated[str, Field(max_length=200)]
Url = Annotated[str, Field(max_length=2000)]


class _Patch(BaseModel):
    """A partial update: absent or null fields stay as they are; an empty patch is an error
    (it would change nothing but the row's version and timestamp)."""

    model_config = _INPUT

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self


# --- users and tokens -------------------------------------------------------------------


class User(BaseModel):
    model_config = _ROW
    id: UUID
    username: str
    display_name: str | None
    avatar_url: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None


class UserDraft(BaseModel):
    model_config = _INPUT
    username: Username
    display_name: DisplayName | None = None
    avatar_url: Url | None = None
    metadata: Metadata = Field(default_factory=dict)


class UserPatch(_Patch):
    """Fields to change; an absent (or null) field stays as it is."""

    display_name: DisplayName | None = None
    avatar_url: Url | None = None
    metadata: Metadata | None = None


class Token(BaseModel):
    model_config = _ROW
    id: UUID
    user_id: UUID
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class TokenDraft(BaseModel):
    model_config = _INPUT
    name: Annotated[str, Field(max_length=200)] | None = None


class IssuedToken(BaseModel):
    """A new token: ``secret`` is the bearer token, shown this once and never stored."""

    model_config = _ROW
    token: Token
    secret: str


# --- conversations ----------------------------------------------------------------------


class Conversation(BaseModel):
    model_config = _ROW
    id: UUID
    user_id: UUID
    title: str
    metadata: dict[str, Any]
    tags: list[str]
    version: int
    message_count: int
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConversationDraft(BaseModel):
    model_config = _INPUT
    id: UUID | None = None
    title: Title = ""
    metadata: Metadata = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)


class ConversationPatch(_Patch):
    """Fields to change; an absent (or null) field stays as it is."""

    title: Title | None = None
    metadata: Metadata | None = None
    tags: Tags | None = None


class ConversationPage(BaseModel):
    model_config = _ROW
    items: list[Conversation]
    next_cursor: str | None


# --- messages ---------------------------------------------------------------------------


class Message(BaseModel):
    model_config = _ROW
    id: UUID
    conversation_id: UUID
    seq: int
    role: Role
    parts: list[dict[str, Any]]
    content: str
    metadata: dict[str, Any]
    status: MessageStatus
    created_at: datetime
    updated_at: datetime


class MessageDraft(BaseModel):
    """A message to append. Give ``id`` to make retries idempotent."""

    model_config = _INPUT
    id: UUID | None = None
    role: Role
    parts: list[Part]
    metadata: Metadata = Field(default_factory=dict)
    status: MessageStatus = "complete"


class MessagePatch(_Patch):
    """An edit: replace ``parts``, append ``append_parts`` (streaming only), replace
    ``metadata``, set ``status`` (``complete`` finalizes a streaming message)."""

    parts: list[Part] | None = None
    append_parts: list[Part] | None = None
    metadata: Metadata | None = None
    status: MessageStatus | None = None


class Appended(BaseModel):
    """The result of an append: ``created`` is False when the id was already there (a retry)."""

    model_config = _ROW
    message: Message
    created: bool


class MessagePage(BaseModel):
    model_config = _ROW
    items: list[Message]
    has_more: bool


# --- meta -------------------------------------------------------------------------------


class ServerState(BaseModel):
    model_config = _ROW
    server_version: int
    applied_migrations: list[str]


class NewUser(BaseModel):
    """A user created together with their first token."""

    model_config = _ROW
    user: User
    token: IssuedToken
