"""Export and import of a user's conversations: streamed out as JSON, read back in one
transaction.

Export
    ``export_conversation`` yields one conversation as one JSON document, ``export_all`` every
    conversation of the user as NDJSON (one such document per line)::

        {"conversation": {...}, "messages": [{...}, {...}]}

    The conversation and each message are written exactly as ``GET /v1/conversations/{id}``
    and ``GET .../messages`` write them. Both read in chunks (bounded in rows and in bytes,
    from the stored sizes) inside one REPEATABLE READ, read-only transaction, so the document
    is one snapshot however long the reader takes, and memory is one chunk whatever the size
    of the conversation. The connection is held until the iterator ends or is closed:
    close it (``aclose()``, or ``contextlib.aclosing``) when stopping early.

Import
    ``read_documents`` parses what an export wrote (one document, or NDJSON of several), or
    an AI SDK ``UIMessage[]`` array (one conversation), validating every message as an append
    would (``MessageDraft``'s rules, the JSON rules, APP_MAX_MESSAGE_BYTES and _PARTS).
    ``import_conversations`` writes them in one transaction: the conversations by statement,
    the messages with one binary COPY, their derived columns (content, parts_bytes,
    parts_count, metadata_bytes) computed here exactly as PostgreSQL computes them for an
    append, and seqs 1..n in document order: what n appends would leave. New ids unless
    ``keep_ids``; a kept conversation id that exists is a Conflict and nothing is written.
"""

from __future__ import annotations

import gc
import logging
import re
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import orjson
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError

from dal.database import translating
from dal.errors import Conflict, InvalidInput, TooLarge
from dal.gateways import conversations, transfer
from dal.gateways.messages import MAX_MESSAGE_BYTES, MAX_MESSAGE_PARTS
from dal.ids import new_id
from dal.records.base import (
    INPUT,
    JSON_DEPTH_CONTEXT,
    MAX_JSON_DEPTH,
    Metadata,
    ThreadId,
    json_problem,
)
from dal.records.conversations import Conversation, Tags, Title
from dal.records.messages import Message, MessageStatus, Part, Role, _check_part
from dal.records.transfer import ImportedConversation, ImportResult

_log = logging.getLogger(__name__)

# An export reads at most this many rows, and about this many bytes, per round trip.
CHUNK_ROWS = 1000
CHUNK_BYTES = 1024 * 1024
# export_all gathers small documents up to this many bytes before yielding them.
_FLUSH_BYTES = 256 * 1024
# An import logs its progress every this many messages.
PROGRESS_EVERY = 10_000
INT4_MAX = 2**31 - 1
# An import's progress: (messages copied, messages in all).
Progress = Callable[[int, int], None]

# --- the documents an import reads ----------------------------------------------------------


class MessageIn(BaseModel):
    """A message of an imported document: a draft (``MessageDraft``'s fields and rules), and
    the fields an export writes besides, accepted and not used (content is derived again, seq
    and times are the import's)."""

    model_config = INPUT
    id: UUID | None = None
    role: Role
    parts: list[Part]
    metadata: Metadata = Field(default_factory=dict)
    status: MessageStatus = "complete"
    conversation_id: UUID | None = None
    seq: int | None = None
    content: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Of the conversation it came from: the importer is the sender of every imported message,
    # and the messages are one branch, in the order given.
    sender_id: UUID | None = None
    reply_to: UUID | None = None
    parent_seq: int | None = None
    session_no: int | None = None
    integrity: str | None = None
    feedback_up: int | None = None
    feedback_down: int | None = None
    edited_at: datetime | None = None
    retracted_at: datetime | None = None


class ConversationIn(BaseModel):
    """The conversation of an imported document: a draft (``ConversationDraft``'s fields) with
    its version, and the fields an export writes besides, accepted and not used."""

    model_config = INPUT
    id: UUID | None = None
    title: Title = ""
    metadata: Metadata = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    # Kept only with keep_ids (another conversation of the user may serve the thread).
    thread_id: ThreadId | None = None
    version: int = Field(default=1, ge=1, le=INT4_MAX)
    user_id: UUID | None = None
    message_count: int | None = None
    last_message_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # An import is a group conversation of the importer's alone.
    kind: str | None = None
    member_count: int | None = None
    leaf_seq: int | None = None
    tool_integrity: str | None = None


class ConversationDocument(BaseModel):
    """One conversation and its messages, in order: what an export writes."""

    model_config = INPUT
    conversation: ConversationIn = Field(default_factory=ConversationIn)
    messages: list[MessageIn] = Field(default_factory=list)


class UIMessage(BaseModel):
    """A Vercel AI SDK ``UIMessage``: an array of them imports as one conversation. An id that
    is not a UUID gets a new one, and is kept in the metadata as ``uiMessageId``."""

    model_config = INPUT
    id: Annotated[str, StringConstraints(max_length=500)]
    role: Role
    parts: list[Part]
    metadata: Metadata | None = None


_DOCUMENT: TypeAdapter[ConversationDocument] = TypeAdapter(ConversationDocument)
_UI_MESSAGES: TypeAdapter[list[UIMessage]] = TypeAdapter(list[UIMessage])

# The same documents as read from JSON, fast: parts and metadata are taken as JSON objects
# (from JSON, every value is a JSON value) and their rules (Part's _check_part, check_json)
# checked afterwards over all of them at once (_values_fine), not by a call per value. Any
# problem, and they are read again by the models above, for the error those give.


class _MessageJson(MessageIn):
    parts: list[dict[str, Any]]
    metadata: dict[str, Any] = Field(default_factory=dict)


class _DocumentJson(ConversationDocument):
    messages: list[_MessageJson] = Field(default_factory=list)  # type: ignore[assignment]


class _UIMessageJson(UIMessage):
    parts: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None


_DOCUMENT_JSON: TypeAdapter[_DocumentJson] = TypeAdapter(_DocumentJson)
_UI_MESSAGES_JSON: TypeAdapter[list[_UIMessageJson]] = TypeAdapter(list[_UIMessageJson])
# A JSON \u0000 escape (not preceded by an escaped backslash): PostgreSQL stores no NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class MalformedImport(InvalidInput):
    """An import that is not JSON (nor NDJSON) at all."""

    code = "malformed_json"


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _invalid(exc: ValidationError, where: str) -> InvalidInput:
    error = exc.errors(include_url=False, include_input=False)[0]
    field = _where(error["loc"])
    at = f"{where}: " if where else ""
    return InvalidInput(f"{at}{field + ': ' if field else ''}{error['msg']}"[:500])


def _is_json_syntax(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors())


def _values_fine(messages: Sequence[MessageIn | UIMessage], max_depth: int) -> bool:
    """Whether the parts and the metadata of ``messages`` pass the checks that Part and
    Metadata make of each (``_check_part``, ``check_json``), made over all of them at once."""
    parts = [part for message in messages for part in message.parts]
    try:
        for part in parts:
            _check_part(part)
    except ValueError:
        return False
    # One level deeper in the list than each on its own.
    metadata = [message.metadata for message in messages if message.metadata is not None]
    return (
        json_problem(parts, max_depth + 1) is None and json_problem(metadata, max_depth + 1) is None
    )


def _one(text: bytes, context: dict[str, Any], where: str) -> ConversationDocument:
    """One JSON value: a conversation document, or a UIMessage array (one conversation)."""
    depth = context[JSON_DEPTH_CONTEXT]
    try:
        if text[:1] == b"[":
            try:
                fast = _UI_MESSAGES_JSON.validate_json(text, context=context)
                if _values_fine(fast, depth):
                    return _from_ui_messages(fast)
            except ValidationError:
                pass
            return _from_ui_messages(_UI_MESSAGES.validate_json(text, context=context))
        if text[:1] != b"{":
            raise InvalidInput(
                f"{where + ': ' if where else ''}an import is a conversation document (a JSON "
                'object: {"conversation": ..., "messages": [...]}) or an array of UI messages'
            )
        try:
            document = _DOCUMENT_JSON.validate_json(text, context=context)
            if _values_fine(document.messages, depth):
                return document
        except ValidationError:
            pass
        return _DOCUMENT.validate_json(text, context=context)
    except ValidationError as exc:
        if _is_json_syntax(exc):
            raise MalformedImport(f"{where or 'the body'} is not valid JSON") from exc
        if text[:1] == b"[":  # the array's index is a message's
            raise _invalid(exc, f"{where}: message" if where else "message") from exc
        raise _invalid(exc, where) from exc


def _from_ui_messages(ui: Sequence[UIMessage]) -> ConversationDocument:
    messages = []
    for message in ui:
        metadata = dict(message.metadata or {})
        try:
            message_id: UUID | None = UUID(message.id)
        except ValueError:
            message_id = None
            metadata.setdefault("uiMessageId", message.id)
        messages.append(
            MessageIn.model_construct(
                id=message_id, role=message.role, parts=message.parts, metadata=metadata
            )
        )
    return ConversationDocument.model_construct(conversation=ConversationIn(), messages=messages)


def read_documents(
    data: bytes, *, max_json_depth: int = MAX_JSON_DEPTH
) -> list[ConversationDocument]:
    """The conversations in ``data``: one JSON document (an export of one conversation, or an
    AI SDK UIMessage array), or NDJSON of several (what ``export_all`` writes; each line either
    kind). InvalidInput naming the line and the field when one is wrong (MalformedImport when
    it is not JSON); sizes are checked by ``import_conversations``."""
    with _gc_paused():
        return _read_documents(data, {JSON_DEPTH_CONTEXT: max_json_depth})


def _read_documents(data: bytes, context: dict[str, Any]) -> list[ConversationDocument]:
    # (the substring test first: the expression alone tries every byte of the body, 30 ms a MB)
    if b"\\u0000" in data and _NUL_ESCAPE.search(data):
        raise InvalidInput("text may not contain the NUL character (\\u0000)")
    text = data.strip()
    if not text:
        raise InvalidInput("nothing to import: the body is empty")
    lines = [line for line in text.split(b"\n") if line.strip()]
    if len(lines) > 1 and all(line.lstrip()[:1] in (b"{", b"[") for line in lines[1:]):
        # Several lines that each start a value: NDJSON, unless the whole is one document
        # (an export of one conversation writes a message per line).
        try:
            return [_one(text, context, "")]
        except MalformedImport:
            pass
        return [_one(line.strip(), context, f"line {n}") for n, line in enumerate(lines, 1)]
    return [_one(text, context, "")]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a large import is built: every object it
    makes lives on, and a collection every few hundred of them walked them all again (read and
    planned with it on, 100,000 messages took twice as long). Reference counting still frees
    what dies."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- PostgreSQL's sizes, computed here -------------------------------------------------------
# parts_bytes and metadata_bytes are octet lengths of jsonb's text (mnemo_parts_bytes). That
# text is orjson's compact text (what the append path sends, and COPY here too) with a space
# after each ':' and ',' between members and elements, and numbers as numeric prints them: the
# same strings (both escape '"', '\', and control characters alike, and nothing else), the keys
# in another order (same length).


def _numeric_text(number: float) -> bytes:
    """How PostgreSQL prints the numeric orjson writes for ``number`` (jsonb keeps numbers as
    numeric: 1e300 prints as 301 digits, 1.5e-7 as 0.00000015)."""
    value = Decimal(orjson.dumps(number).decode())
    if value == 0:
        value = value.copy_abs()  # numeric has no negative zero
    return format(value, "f").encode()


def _jsonb_extra(value: Any) -> int:
    """Bytes jsonb's text of ``value`` has beyond orjson's compact text of it."""
    extra = 0
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            if item:
                extra += 2 * len(item) - 1
                push(item.values())
        elif kind is list:
            if item:
                extra += len(item) - 1
                push(item)
        elif kind is float:
            extra += len(_numeric_text(item)) - len(orjson.dumps(item))
        elif isinstance(item, dict):  # subclasses, from Python callers
            push([dict(item)])
        elif isinstance(item, list):
            push([list(item)])
    return extra


def jsonb_sizes(parts: list[Any], metadata: dict[str, Any]) -> tuple[bytes, int, bytes, int]:
    """(parts' JSON, parts_bytes, metadata's JSON, metadata_bytes): the texts COPY sends and
    the sizes PostgreSQL gives them (mnemo_parts_bytes, octet_length(metadata::text))."""
    parts_json = orjson.dumps(parts)
    metadata_json = orjson.dumps(metadata)
    count = len(parts)
    # the sum over parts of each one's text: the array's text without its brackets and commas,
    # and the spaces jsonb puts inside each part (not those between them)
    parts_bytes = len(parts_json) - 2 + _jsonb_extra(parts) - 2 * (count - 1) if count else 0
    return parts_json, parts_bytes, metadata_json, len(metadata_json) + _jsonb_extra(metadata)


def parts_text(parts: list[Any]) -> str:
    """messages.content as mnemo_parts_text derives it: the text parts' text, one per line."""
    return "\n".join(part["text"] for part in parts if part.get("type") == "text")


# --- the COPY rows ----------------------------------------------------------------------------

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_ROW_KEYS = struct.Struct(">hi16si16si16s")  # field count; conversation_id; user_id; sender_id
_ROW_HEAD = struct.Struct(">iqi16s")  # seq; id
_ROW_TAIL = struct.Struct(">iqiiii")  # parts_bytes int8, parts_count int4, metadata_bytes int4
_PARENT = struct.Struct(">iq")  # parent_seq int8: the message before (one branch)
_NULL = b"\xff\xff\xff\xff"  # a NULL field: length -1
_LENGTH = struct.Struct(">i")
_TEXTS = {
    value: _LENGTH.pack(len(value)) + value.encode()
    for value in ("user", "assistant", "system", "tool", "complete", "streaming")
}
_FIELDS = len(transfer.MESSAGE_COLUMNS)


@dataclass(slots=True)
class _Plan:
    """What an import writes: conversation rows, and the COPY data of their messages."""

    conversations: list[tuple[Any, ...]]
    results: list[ImportedConversation]
    chunks: list[bytes]
    message_count: int


def _plan(
    documents: Sequence[ConversationDocument],
    *,
    user_id: UUID,
    keep_ids: bool,
    max_bytes: int,
    max_parts: int,
) -> _Plan:
    plan = _Plan([], [], [], 0)
    rows: list[bytes] = []
    seen: set[UUID] = set()
    many = len(documents) > 1
    for number, document in enumerate(documents, 1):
        where = f"document {number}: " if many else ""
        conversation = document.conversation
        conversation_id = (conversation.id if keep_ids else None) or new_id()
        if conversation_id in seen:
            raise InvalidInput(f"{where}conversation {conversation_id} comes twice")
        seen.add(conversation_id)
        _, _, _, metadata_bytes = jsonb_sizes([], conversation.metadata)
        if metadata_bytes > max_bytes:
            raise TooLarge(
                f"{where}conversation.metadata: over {max_bytes} bytes (APP_MAX_MESSAGE_BYTES)",
                code="message_too_large",
            )
        keys = _ROW_KEYS.pack(
            _FIELDS, 16, conversation_id.bytes, 16, user_id.bytes, 16, user_id.bytes
        )
        message_ids: set[UUID] = set()
        for seq, message in enumerate(document.messages, 1):
            at = f"{where}messages.{seq - 1}"
            message_id = (message.id if keep_ids else None) or new_id()
            if message_id in message_ids:
                raise InvalidInput(f"{at}.id: message {message_id} comes twice")
            message_ids.add(message_id)
            rows.append(_copy_row(keys, seq, message_id, message, at, max_bytes, max_parts))
            plan.message_count += 1
            if len(rows) >= CHUNK_ROWS:
                plan.chunks.append(b"".join(rows))
                rows.clear()
            if plan.message_count % PROGRESS_EVERY == 0:
                _log.info("import: %d messages read", plan.message_count)
        count = len(document.messages)
        if count > INT4_MAX:  # pragma: no cover - far beyond any body bound
            raise TooLarge(f"{where}over {INT4_MAX} messages")
        plan.conversations.append(
            (
                conversation_id,
                conversation.title,
                conversation.metadata,
                conversation.tags,
                conversation.thread_id if keep_ids else None,
                conversation.version,
                count,
            )
        )
        plan.results.append(
            ImportedConversation(id=conversation_id, title=conversation.title, message_count=count)
        )
    if rows:
        plan.chunks.append(b"".join(rows))
    return plan


def _copy_row(
    keys: bytes,
    seq: int,
    message_id: UUID,
    message: MessageIn,
    at: str,
    max_bytes: int,
    max_parts: int,
) -> bytes:
    parts = message.parts
    try:
        parts_json, parts_bytes, metadata_json, metadata_bytes = jsonb_sizes(
            parts, message.metadata
        )
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"{at}: cannot be stored as JSON ({exc})") from None
    if len(parts) > max_parts or parts_bytes > max_bytes or metadata_bytes > max_bytes:
        raise TooLarge(
            f"{at}: a message holds at most {max_parts} parts and {max_bytes} bytes of parts, "
            f"and {max_bytes} bytes of metadata (APP_MAX_MESSAGE_PARTS, APP_MAX_MESSAGE_BYTES)",
            code="message_too_large",
        )
    content = parts_text(parts).encode()
    return b"".join(
        (
            keys,
            _ROW_HEAD.pack(8, seq, 16, message_id.bytes),
            _TEXTS[message.role],
            _LENGTH.pack(len(parts_json) + 1),
            b"\x01",  # jsonb's binary format: a version byte, then the text
            parts_json,
            _LENGTH.pack(len(content)),
            content,
            _LENGTH.pack(len(metadata_json) + 1),
            b"\x01",
            metadata_json,
            _TEXTS[message.status],
            _ROW_TAIL.pack(8, parts_bytes, 4, len(parts), 4, metadata_bytes),
            _PARENT.pack(8, seq - 1) if seq > 1 else _NULL,
        )
    )


async def _copy_source(plan: _Plan, progress: Progress | None) -> AsyncIterator[bytes]:
    yield _COPY_HEADER
    copied = 0
    for chunk in plan.chunks:
        yield chunk
        before, copied = copied, copied + min(CHUNK_ROWS, plan.message_count - copied)
        if copied // PROGRESS_EVERY > before // PROGRESS_EVERY:
            _log.info("import: %d of %d messages copied", copied, plan.message_count)
        if progress is not None:
            progress(copied, plan.message_count)
    yield _COPY_TRAILER


async def import_conversations(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    documents: Sequence[ConversationDocument],
    keep_ids: bool = False,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_parts: int = MAX_MESSAGE_PARTS,
    progress: Progress | None = None,
    timeout: float | None = None,
) -> ImportResult:
    """Create ``documents`` (``read_documents``) as the user's conversations, in one
    transaction: all or nothing.

    New conversation and message ids unless ``keep_ids`` (a thread_id is kept only then); a
    kept conversation id that exists (anyone's) is a Conflict. Messages get seqs 1..n in
    order and the transaction's time; a message over ``max_parts`` or ``max_bytes`` (parts,
    or metadata; a conversation's metadata too) is TooLarge, naming it. Progress goes to the
    log every PROGRESS_EVERY messages, and to ``progress(copied, total)`` (if given) after
    every chunk of messages sent. ``timeout``: seconds the import's statements may run (its
    COPY above all), instead of the session's statement_timeout (DB_QUERY_TIMEOUT), which a
    large import passes: the app gives APP_IMPORT_TIMEOUT.
    """
    with _gc_paused():
        plan = _plan(
            documents, user_id=user_id, keep_ids=keep_ids, max_bytes=max_bytes, max_parts=max_parts
        )
    ids = [row[0] for row in plan.conversations]
    with translating():
        async with pool.acquire() as conn, conn.transaction():
            if timeout is not None:
                await transfer.update_import_timeout(conn, seconds=timeout)
            if keep_ids:
                taken = await transfer.list_existing_conversation_ids(conn, ids=ids)
                if taken:
                    raise Conflict(
                        f"conversation {taken[0]} already exists: import without keep_ids "
                        "to give it a new id"
                    )
            try:
                await transfer.insert_imported_conversations(
                    conn, user_id=user_id, conversations=plan.conversations
                )
            except Conflict as exc:
                if exc.constraint == conversations.THREAD_LINK_KEY:
                    raise Conflict(
                        "a thread_id of the import already serves another conversation of "
                        "the user: import without keep_ids, or unlink it first",
                        constraint=exc.constraint,
                    ) from exc
                raise
            if plan.message_count:
                await transfer.copy_messages(
                    conn,
                    source=_copy_source(plan, progress),
                    # The server's own limit first (a clear 504), then the client's.
                    timeout=None if timeout is None else timeout + 2.0,
                )
    _log.info("import: %d conversations, %d messages", len(plan.conversations), plan.message_count)
    return ImportResult(
        conversation_count=len(plan.results),
        message_count=plan.message_count,
        conversations=plan.results,
    )


# --- export -----------------------------------------------------------------------------------

_JSON_OPTIONS = orjson.OPT_UTC_Z
_CONVERSATION_FIELDS = tuple(Conversation.model_fields)
_MESSAGE_FIELDS = tuple(Message.model_fields)


def _uuid(value: Any) -> str:
    if isinstance(value, UUID):  # asyncpg's own UUID class, which orjson does not know
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def render_conversation(conversation: Conversation) -> bytes:
    """The JSON of a conversation, as ``GET /v1/conversations/{id}`` writes it."""
    values = conversation.__dict__
    return orjson.dumps(
        {name: values[name] for name in _CONVERSATION_FIELDS}, default=_uuid, option=_JSON_OPTIONS
    )


def _render_messages(rows: Sequence[Any], separator: bytes) -> bytes:
    """The JSON of message rows, as ``GET .../messages`` writes each, joined."""
    if not rows:
        return b""
    names = tuple(rows[0].keys())
    if names != _MESSAGE_FIELDS:  # pragma: no cover - the catalog test holds the query to it
        raise TypeError(f"message rows have columns {names}")
    # The two UUIDs as text here (one conversation per chunk): asyncpg's UUIDs would cost
    # orjson a call of _uuid each.
    conversation_id = str(rows[0]["conversation_id"])
    dumps, pieces = orjson.dumps, []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        values["id"] = str(values["id"])
        values["conversation_id"] = conversation_id
        pieces.append(dumps(values, default=_uuid, option=_JSON_OPTIONS))
    return separator.join(pieces)


@asynccontextmanager
async def _snapshot(pool: asyncpg.Pool[Any]) -> AsyncIterator[Any]:
    """One connection in a read-only REPEATABLE READ transaction: every chunk one snapshot."""
    with translating():
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn


async def _messages(
    conn: Any, user_id: UUID, conversation_id: UUID, separator: bytes
) -> AsyncIterator[bytes]:
    """The JSON of the conversation's messages in seq order, a chunk at a time (each chunk's
    messages joined by ``separator``, which also comes before every chunk but the first)."""
    after, first = 0, True
    while True:
        rows, more = await transfer.list_messages_for_export(
            conn,
            user_id=user_id,
            conversation_id=conversation_id,
            after_seq=after,
            limit=CHUNK_ROWS,
            max_bytes=CHUNK_BYTES,
        )
        if rows:
            yield (b"" if first else separator) + _render_messages(rows, separator)
            first = False
            after = rows[-1]["seq"]
        if not more:
            return


async def export_conversation(
    pool: asyncpg.Pool[Any], *, user_id: UUID, conversation_id: UUID
) -> AsyncGenerator[bytes, None]:
    """The caller's conversation as one JSON document, in pieces: the conversation, then its
    messages in seq order (a line each). NotFound (on the first piece) if it is missing or
    not the caller's."""
    async with _snapshot(pool) as conn:
        conversation = await conversations.get_conversation(
            conn, user_id=user_id, conversation_id=conversation_id
        )
        yield b'{"conversation":' + render_conversation(conversation) + b',"messages":['
        empty = True
        async for piece in _messages(conn, user_id, conversation_id, b",\n"):
            yield (b"\n" if empty else b"") + piece
            empty = False
        yield b"]}\n" if empty else b"\n]}\n"


async def export_all(pool: asyncpg.Pool[Any], *, user_id: UUID) -> AsyncGenerator[bytes, None]:
    """Every conversation of the user as NDJSON, in pieces: one document per line (as
    ``export_conversation`` writes it, on one line), most recent activity first."""
    async with _snapshot(pool) as conn:
        after: tuple[datetime, UUID] | None = None
        buffer = bytearray()
        while True:
            chunk, more = await transfer.list_conversations_for_export(
                conn, user_id=user_id, after=after, limit=100, max_bytes=CHUNK_BYTES
            )
            for conversation in chunk:
                buffer += b'{"conversation":' + render_conversation(conversation)
                buffer += b',"messages":['
                async for piece in _messages(conn, user_id, conversation.id, b","):
                    buffer += piece
                    if len(buffer) >= _FLUSH_BYTES:
                        yield bytes(buffer)
                        buffer.clear()
                buffer += b"]}\n"
                if len(buffer) >= _FLUSH_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
            if not more or not chunk:
                break
            after = (chunk[-1].updated_at, chunk[-1].id)
        if buffer:
            yield bytes(buffer)
