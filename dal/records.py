"""Pydantic records: drafts and patches (inputs, strict) and rows (outputs, frozen).

Both forbid extra fields. Output rows are built from trusted database rows; a catalog test
checks that every query's columns match the fields of the record it is mapped to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["complete", "streaming"]

_ROW = ConfigDict(frozen=True, extra="forbid")
_set = object.__setattr__
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


# --- JSON values a client stores (metadata, a message part, a thread's values) -------------
# Each must nest at most MAX_JSON_DEPTH objects/arrays deep (the value itself is level 1) and
# hold only numbers that come back as sent: integers within 64 bits, floats finite (so within
# a double's range). A validation context {JSON_DEPTH_CONTEXT: n} sets another depth limit
# (the app passes APP_MAX_JSON_DEPTH). The README's "JSON values" states the rule.
MAX_JSON_DEPTH = 64
JSON_DEPTH_CONTEXT = "max_json_depth"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DOUBLE_MAX = 1.7976931348623157e308


def json_problem(value: object, max_depth: int) -> tuple[str, str] | None:
    """Why a parsed JSON value may not be stored, as (error type, message), or None.

    Iterative, so any depth is safe to check. Refuses nesting deeper than ``max_depth``, a
    float that is not finite (the JSON parser reads 1e400 as infinity; orjson would write it
    as null) and an integer beyond 64 bits (jsonb would keep it but nothing reads it back).
    """
    if not isinstance(value, dict | list):
        return _scalar_problem(value, ())
    if _fine(value, max_depth):
        return None
    return _locate(value, max_depth)


def _fine(value: dict[Any, Any] | list[Any], max_depth: int) -> bool:
    """Whether ``json_problem`` finds nothing: one level at a time, so that nothing is built
    per container (a body of 300,000 empty lists took a second when each one got a tuple, most
    of it in the garbage collector)."""
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            return False
        below: list[Any] = []
        push = below.append
        for container in level:
            for item in container.values() if isinstance(container, dict) else container:
                kind = type(item)  # exact types first: this loop sees every value of the body
                if kind is str or item is None or kind is bool:
                    continue
                if kind is dict or kind is list:
                    push(item)
                elif kind is float:
                    if not -_DOUBLE_MAX <= item <= _DOUBLE_MAX:  # also false for NaN
                        return False
                elif kind is int:
                    if not INT64_MIN <= item <= INT64_MAX:
                        return False
                elif isinstance(item, dict | list):  # subclasses, from Python callers
                    push(item)
                elif _scalar_problem(item, ()):
                    return False
        level = below
        depth += 1
    return True


def _locate(value: dict[Any, Any] | list[Any], max_depth: int) -> tuple[str, str] | None:
    """``json_problem`` of a value ``_fine`` refused, with where (only on the error path)."""
    # (container, its depth, its path as (parent path, key))
    stack: list[tuple[Any, int, Any]] = [(value, 1, ())]
    while stack:
        container, depth, path = stack.pop()
        if depth > max_depth:
            return "json_too_deep", f"nested deeper than {max_depth} levels{_at(path)}"
        pairs = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in pairs:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1, (path, key)))
            elif problem := _scalar_problem(item, (path, key)):
                return problem
    return None


def _scalar_problem(value: object, path: Any) -> tuple[str, str] | None:
    if isinstance(value, float) and not -_DOUBLE_MAX <= value <= _DOUBLE_MAX:
        return "json_number", (
            f"number out of range{_at(path)}: numbers are doubles, at most about 1.8e308 in "
            "magnitude (NaN and Infinity are not JSON)"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            return "json_number", (
                f"integer out of range{_at(path)}: integers are 64-bit, {INT64_MIN} to {INT64_MAX}"
            )
    return None


def _at(path: Any) -> str:
    """The " at a.0.b" of a (parent path, key) chain, cut short (keys are client text)."""
    keys: list[str] = []
    while path:
        path, key = path
        keys.append(str(key))
    where = ".".join(reversed(keys))
    return f" at {where[:60]}{'…' if len(where) > 60 else ''}" if keys else ""


def _check_json(value: Any, info: ValidationInfo) -> Any:
    limit = (info.context or {}).get(JSON_DEPTH_CONTEXT, MAX_JSON_DEPTH)
    problem = json_problem(value, limit)
    if problem is not None:
        raise PydanticCustomError(problem[0], "{problem}", {"problem": problem[1]})
    return value


JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_check_json)]
Part = Annotated[dict[str, JsonValue], AfterValidator(_check_part), AfterValidator(_check_json)]
Metadata = JsonObject
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
# A token's lifetime in seconds: at most 100 years here (APP_MAX_TOKEN_EXPIRES_IN may allow
# less), which keeps now() + it far inside PostgreSQL's timestamps.
MAX_TOKEN_EXPIRES_IN = 100 * 365 * 24 * 3600


def _whole_number(value: object) -> object:
    """A float with no fraction as the integer it is: JSON (and JSON Schema) make no difference
    between 60 and 60.0, while strict records take only the first. Anything else is left for
    the strict check to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# (The bounds come first: they belong to the integer, and the schema shows them as such.)
TokenExpiresIn = Annotated[
    int, Field(ge=1, le=MAX_TOKEN_EXPIRES_IN), BeforeValidator(_whole_number)
]
# A LangGraph thread id: any string the agent chose.
ThreadId = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Url = Annotated[str, Field(max_length=2000)]


class Row(BaseModel):
    """An output record: frozen, no extra fields, built from a database row by ``from_row``."""

    model_config = _ROW
    # The fields set of every record built by from_row; one set per class, shared (pydantic
    # copies it before changing it, in model_copy).
    _all_fields: ClassVar[set[str]] = set()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._all_fields = set(cls.__pydantic_fields__)

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | asyncpg.Record) -> Self:
        """The record of a row of one of our named queries, without re-validating it.

        The row's types are the schema's (uuid, int8, text, timestamptz, jsonb decoded by the
        codec; role and status held by CHECK constraints), and tests/test_query_catalog.py
        checks that each query returns exactly the record's fields, so validation would only
        repeat what PostgreSQL guarantees. It used to cost as much as the fetch itself on a
        page of 50 messages; tests/test_records.py shows both ways build equal records.
        """
        return cls.from_values(dict(row.items()))

    @classmethod
    def from_rows(cls, rows: Sequence[asyncpg.Record]) -> list[Self]:
        """``from_row`` for many rows of one query (their column names are read once)."""
        if not rows:
            return []
        names = tuple(rows[0].keys())
        # The hot path of every page: from_values inlined, names bound locally.
        new, fields, records = cls.__new__, cls._all_fields, []
        for row in rows:
            record = new(cls)
            _set(record, "__dict__", dict(zip(names, row, strict=False)))
            _set(record, "__pydantic_fields_set__", fields)
            _set(record, "__pydantic_extra__", None)
            _set(record, "__pydantic_private__", None)
            records.append(record)
        return records

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Self:
        """``from_row`` of a dict of column values, which the record then owns."""
        record = cls.__new__(cls)
        _set(record, "__dict__", values)
        _set(record, "__pydantic_fields_set__", cls._all_fields)
        _set(record, "__pydantic_extra__", None)
        _set(record, "__pydantic_private__", None)
        return record


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


class User(Row):
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
    # Seconds until the user's first token expires; None: it never does.
    token_expires_in: TokenExpiresIn | None = None


class UserPatch(_Patch):
    """Fields to change: an absent field stays as it is; ``null`` clears ``display_name`` or
    ``avatar_url`` (``metadata`` cannot be null: ``{}`` empties it)."""

    display_name: DisplayName | None = None
    avatar_url: Url | None = None
    metadata: Metadata | None = None  # null refused (below); app/openapi.py says so

    @model_validator(mode="after")
    def _not_empty(self) -> Self:  # replaces _Patch's: here a null is a change
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self

    @field_validator("metadata")
    @classmethod
    def _metadata_not_null(cls, value: Metadata | None) -> Metadata | None:
        if value is None:
            raise ValueError("metadata cannot be null: send {} to empty it")
        return value


class Token(Row):
    id: UUID
    user_id: UUID
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenDraft(BaseModel):
    model_config = _INPUT
    name: Annotated[str, Field(max_length=200)] | None = None
    # Seconds until the token expires; None: it never does (it works until revoked).
    expires_in: TokenExpiresIn | None = None


class IssuedToken(BaseModel):
    """A new token: ``secret`` is the bearer token, shown this once and never stored."""

    model_config = _ROW
    token: Token
    secret: str


class TokenList(Row):
    """A user's active (unrevoked, unexpired) tokens, newest first; ``has_more`` when more
    are active than listed (possible only after APP_MAX_TOKENS_PER_USER was lowered)."""

    items: list[Token]
    has_more: bool


# --- conversations ----------------------------------------------------------------------


def _not_null(value: Any, info: ValidationInfo) -> Any:
    """A patch field that cannot be null: refused, not silently kept (absent keeps it)."""
    if value is None:
        raise ValueError(f"{info.field_name} cannot be null: leave it out to keep it")
    return value


def _without_null(schema: dict[str, Any]) -> None:
    """The JSON schema of a ``_NOT_NULL`` field: its type without null, no default."""
    schema.pop("default", None)
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


# A patch field that may be absent (None: keep) but not null (refused by _not_null).
_NOT_NULL: Any = Field(default=None, json_schema_extra=_without_null)


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


class ConversationDraft(BaseModel):
    model_config = _INPUT
    id: UUID | None = None
    title: Title = ""
    metadata: Metadata = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    thread_id: ThreadId | None = None


class ConversationPatch(_Patch):
    """Fields to change; an absent field stays as it is. ``title``, ``metadata`` and ``tags``
    cannot be null (send ``""``, ``{}`` or ``[]`` to empty them)."""

    title: Title | None = _NOT_NULL
    metadata: Metadata | None = _NOT_NULL
    tags: Tags | None = _NOT_NULL
    # The thread of the user's that serves this conversation; null unlinks it.
    thread_id: ThreadId | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:  # replaces _Patch's: a null thread_id is a change
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self

    @field_validator("title", "metadata", "tags")
    @classmethod
    def _conversation_field_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        return _not_null(value, info)


class CreatedConversation(Row):
    """The result of a create: ``created`` is False when the id was already there (a retry)."""

    conversation: Conversation
    created: bool


class ConversationPage(Row):
    items: list[Conversation]
    next_cursor: str | None


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
    ``metadata``, set ``status`` (``complete`` finalizes a streaming message). An absent field
    stays as it is; none can be null (``[]`` or ``{}`` empties parts or metadata)."""

    parts: list[Part] | None = _NOT_NULL
    append_parts: list[Part] | None = _NOT_NULL
    metadata: Metadata | None = _NOT_NULL
    status: MessageStatus | None = _NOT_NULL

    @field_validator("parts", "append_parts", "metadata", "status")
    @classmethod
    def _message_field_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        return _not_null(value, info)


class Appended(Row):
    """The result of an append: ``created`` is False when the id was already there (a retry)."""

    message: Message
    created: bool


class MessagePage(Row):
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


# --- checkpoints ------------------------------------------------------------------------


class CheckpointRow(Row):
    """A stored checkpoint with its channel blobs and pending writes, as parallel arrays
    (NULL when there are none). Values are still serialized; dal/langgraph.py decodes them."""

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


class ThreadPage(Row):
    items: list[Thread]
    next_cursor: str | None


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

    model_config = _INPUT
    values: Annotated[dict[Channel, JsonValue], AfterValidator(_check_json)]
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
    model_config = _INPUT
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


class ThreadPrune(BaseModel):
    model_config = _INPUT
    strategy: Literal["keep_latest", "delete"]


class Pruned(Row):
    deleted: int
