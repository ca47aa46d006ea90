"""Messages of a conversation, scoped by the caller (``user_id``) through the conversation."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from dal.cursors import check_limit
from dal.database import Executor, Record, fetch_all, fetch_one, fetch_value
from dal.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    NotPermitted,
    OverLimit,
    TooLarge,
    ToolCallUnpaired,
)
from dal.ids import new_id
from dal.queries import Q
from dal.records.messages import (
    Appended,
    Message,
    MessageDraft,
    MessagePage,
    MessagePatch,
    MessageVersion,
    MessageVersionPage,
    referenced_attachments,
)
from dal.records.search import MessageSearch, SearchHit, SearchPage, snippet

# The defaults of APP_MAX_MESSAGE_BYTES, APP_MAX_MESSAGE_PARTS and APP_MAX_PAGE_BYTES, for
# callers of the gateways that pass no limits of their own (the app passes its settings).
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_MESSAGE_PARTS = 1000
MAX_PAGE_BYTES = 4 * 1024 * 1024
# The default of APP_EDIT_WINDOW_SECONDS: how long after it was written a message may be
# edited or retracted by its sender.
EDIT_WINDOW_SECONDS = 300


class EditWindowClosed(Conflict):
    """An edit or retraction past APP_EDIT_WINDOW_SECONDS (README "Edits and retraction")."""

    code = "edit_window_closed"


class MessageRetracted(Conflict):
    """A change to a message that was retracted or deleted: a tombstone stays as it is."""

    code = "message_retracted"


# The defaults of APP_SESSION_TIMEOUT_SECONDS, APP_MAX_MESSAGES_PER_CONVERSATION and
# APP_MAX_MESSAGES_PER_USER (0: no limit).
SESSION_TIMEOUT_SECONDS = 900.0
MAX_MESSAGES_PER_CONVERSATION = 0
MAX_MESSAGES_PER_USER = 0

# A limit an append reached: what it is, and the setting that sets it.
_LIMITS = {
    "conversation_limit": ("this conversation holds", "APP_MAX_MESSAGES_PER_CONVERSATION"),
    "user_limit": ("you have written", "APP_MAX_MESSAGES_PER_USER"),
}


def _message(row: Record) -> Message:
    return Message.from_row(row)


def _changed(row: Record) -> Message:
    """The message of a row of update_message or delete_own_message (without its problem)."""
    values = dict(row.items())
    del values["problem"]
    values.pop("attachment_id", None)
    return Message.from_values(values)


def _unreadable(attachment_id: UUID | None) -> NotFound:
    """A file part names a file the caller may not read (or that is not there)."""
    return NotFound(
        f"attachment {attachment_id} (a file part references it: upload it first, or reference "
        "one you may read)"
    )


def _edit_problem(problem: str, edit_window: float, doing: str) -> Conflict | NotPermitted:
    """The error of an edit or retraction that changed nothing, from its statement's problem."""
    if problem == "forbidden":
        return NotPermitted(f"only the member who wrote a message may have it {doing}")
    if problem == "retracted":
        return MessageRetracted("the message was retracted or deleted: it can no longer change")
    return EditWindowClosed(
        f"a message can be edited or retracted by its sender only within {edit_window:g} "
        "seconds of being written (APP_EDIT_WINDOW_SECONDS)"
    )


def _too_large(max_bytes: int, max_parts: int) -> TooLarge:
    return TooLarge(
        f"a message holds at most {max_parts} parts and {max_bytes} bytes of parts, and "
        f"{max_bytes} bytes of metadata (APP_MAX_MESSAGE_PARTS, APP_MAX_MESSAGE_BYTES; "
        "bytes of JSON as stored: a number like 1e300 counts its 301 digits)",
        code="message_too_large",
    )


async def insert_message(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    draft: MessageDraft,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_parts: int = MAX_MESSAGE_PARTS,
    session_timeout: float = SESSION_TIMEOUT_SECONDS,
    max_per_conversation: int = MAX_MESSAGES_PER_CONVERSATION,
    max_per_user: int = MAX_MESSAGES_PER_USER,
) -> Appended:
    """Append a message (one statement; seq = previous + 1, gapless under concurrency).

    If ``draft.id`` is already in the conversation, nothing is written: the stored message
    (as it is now) comes back with ``created=False`` when this draft is the request that
    created it (same role, parts, metadata and status), else IdempotencyMismatch. TooLarge
    (``message_too_large``) when the parts exceed ``max_bytes`` or ``max_parts``, or the
    metadata ``max_bytes``; NotFound (naming reply_to) when ``draft.reply_to`` names no
    message of the conversation; NotPermitted when the caller's role may not append; NotFound if the
    conversation is missing or the caller is not a member. Raises no error that aborts a
    caller's transaction on a concurrent retry of the same id. The message follows the
    active leaf: ``draft.parent_id`` is not read here (dal.usecases.branches starts branches).

    It joins the conversation's chat session, or starts the next one when the last activity
    is more than ``session_timeout`` seconds old or the session was ended. OverLimit
    (``limit_reached``) when the conversation holds ``max_per_conversation`` messages or the
    caller has written ``max_per_user`` (0: no limit; a retry of a stored id is never refused).
    With the conversation's ``tool_integrity`` 'reject', ToolCallUnpaired (422)
    naming the call when the message answers no recorded call or leaves one unanswered; with
    'flag' it is stored with ``integrity`` set (README "Tool-call integrity").
    """
    message_id = draft.id or new_id()
    args = (
        user_id,
        conversation_id,
        message_id,
        draft.role,
        draft.parts,
        draft.metadata,
        draft.status,
        max_bytes,
        max_parts,
        draft.reply_to,
        session_timeout,
        max_per_conversation,
        max_per_user,
        referenced_attachments(draft.parts),
    )
    row = await fetch_one(db, Q["insert_message"], *args)
    if row is None or (draft.id is not None and row["problem"] in _LIMITS):
        # Missing conversation, or a concurrent request stored this id while this one waited
        # for the conversation (then a limit it reached may be the retry's own message): a new
        # statement (a new snapshot) sees which.
        row = await fetch_one(db, Q["insert_message"], *args)
        if row is None:
            raise NotFound("conversation", conversation_id)
    values = dict(row.items())
    created = values.pop("created")
    problem = values.pop("problem")
    tool_call_id = values.pop("tool_call_id")
    unreadable = values.pop("attachment_id")
    if problem in _LIMITS:
        what, setting = _LIMITS[problem]
        limit = max_per_conversation if problem == "conversation_limit" else max_per_user
        raise OverLimit(
            f"message limit reached: {what} {limit} messages, the most {setting} allows"
        )
    if problem == "tool_call_unpaired":
        raise ToolCallUnpaired(
            f"tool call {tool_call_id!r} is unpaired: "
            + (
                "no earlier message of this conversation makes this call"
                if draft.role == "tool"
                else "it has no result yet; append its 'tool' message (or the output-* part) first"
            )
            + " (this conversation's tool_integrity is 'reject')"
        )
    if problem == "forbidden":
        raise NotPermitted("your role in this conversation may not append messages")
    if problem == "reply_to":
        raise NotFound(f"reply_to: message {draft.reply_to} of this conversation")
    if problem == "attachment":
        raise _unreadable(unreadable)
    if problem is not None:
        raise _too_large(max_bytes, max_parts)
    if created is None:
        raise IdempotencyMismatch(
            f"message {message_id} was already stored with other content: "
            "retry with the same content, or use a new id"
        )
    return Appended.from_values({"message": Message.from_values(values), "created": created})


async def get_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> Message:
    """One message of the caller's conversation; NotFound if missing or not theirs."""
    row = await fetch_one(db, Q["get_message"], user_id, conversation_id, message_id)
    if row is None:
        raise NotFound("message", message_id)
    return _message(row)


def _page(rows: Sequence[Record], conversation_id: UUID) -> MessagePage:
    if not rows:
        raise NotFound("conversation", conversation_id)
    if rows[0]["seq"] is None:  # the conversation's row alone: no message in this range
        return MessagePage(items=[], has_more=False)
    # The row after the page (past the count or the bytes) comes without its parts.
    items = [row for row in rows if row["parts"] is not None]
    return MessagePage.from_row(
        {"items": Message.from_rows(items), "has_more": len(items) < len(rows)}
    )


async def list_messages(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    before: int | None = None,
    after: int | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
) -> MessagePage:
    """A page of messages, always oldest first.

    With neither cursor: the newest ``limit``. ``before=S``: the page just before seq S;
    ``after=S``: the page just after it. A page also ends before its messages exceed
    ``max_bytes`` (parts, content and metadata), but holds at least one. ``has_more`` says
    whether more exist beyond the page in the direction of travel (older for newest/before,
    newer for after).
    """
    check_limit(limit)
    if before is not None and after is not None:
        raise InvalidInput("give before or after, not both")
    if after is not None:
        rows = await fetch_all(
            db, Q["list_messages_after"], user_id, conversation_id, after, limit + 1, max_bytes
        )
    elif before is not None:
        rows = await fetch_all(
            db, Q["list_messages_before"], user_id, conversation_id, before, limit + 1, max_bytes
        )
    else:
        rows = await fetch_all(
            db, Q["list_messages_latest"], user_id, conversation_id, limit + 1, max_bytes
        )
    return _page(rows, conversation_id)


async def update_message(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    patch: MessagePatch,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_parts: int = MAX_MESSAGE_PARTS,
    edit_window: float = EDIT_WINDOW_SECONDS,
) -> Message:
    """Change one's own message in one statement (see MessagePatch).

    Streaming (``append_parts``, ``parts`` of a streaming message, ``status``) and
    ``metadata`` change it in place at any time. Replacing the ``parts`` of a complete message
    is an edit: allowed within ``edit_window`` seconds of its ``created_at`` (else
    EditWindowClosed), it keeps the replaced parts and metadata as an earlier version
    (list_message_versions) and sets ``edited_at``. Conflict when appending to a complete
    message or reopening one; MessageRetracted once it is retracted or deleted; TooLarge
    (``message_too_large``) when its parts would exceed ``max_bytes`` or ``max_parts``, or its
    metadata ``max_bytes``; NotPermitted for a member who is not its sender; NotFound if
    missing or the caller is not a member."""
    row = await fetch_one(
        db,
        Q["update_message"],
        user_id,
        conversation_id,
        message_id,
        patch.parts,
        patch.append_parts,
        patch.metadata,
        patch.status,
        max_bytes,
        max_parts,
        float(edit_window),
        referenced_attachments([*(patch.parts or ()), *(patch.append_parts or ())]),
    )
    if row is None:
        raise NotFound("message", message_id)
    problem = row["problem"]
    if problem == "attachment":
        raise _unreadable(row["attachment_id"])
    if problem == "complete":
        raise Conflict(f"message {message_id} is complete: it can no longer be streamed to")
    if problem == "too_large":
        raise _too_large(max_bytes, max_parts)
    if problem is not None:
        raise _edit_problem(problem, edit_window, "changed")
    return _changed(row)


async def delete_own_message(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    edit_window: float = EDIT_WINDOW_SECONDS,
) -> Message:
    """Take back one's own message, within ``edit_window`` seconds of its ``created_at``, in
    one statement: its parts, content, metadata and earlier versions are gone, and it stays as
    a tombstone (``retracted_at`` set, same seq and place on its branch). Returns the
    tombstone; a message already retracted or deleted comes back as it is, at any time.
    EditWindowClosed past the window; NotPermitted for a member who is not its sender;
    NotFound if missing or the caller is not a member."""
    row = await fetch_one(
        db, Q["delete_own_message"], user_id, conversation_id, message_id, float(edit_window)
    )
    if row is None:
        raise NotFound("message", message_id)
    if row["problem"] is not None:
        raise _edit_problem(row["problem"], edit_window, "retracted")
    return _changed(row)


async def delete_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> None:
    """Delete any message of the conversation (a role that may 'delete_message': owner, admin,
    moderator), in one statement: like a retraction, its content and earlier versions go and
    a tombstone keeps its place (``retracted_at`` set; seqs stay gapless, branches whole, the
    conversation's counters unchanged). Deleting a tombstone changes nothing. NotFound if
    missing or the caller is not a member; NotPermitted for a member whose role may not (a
    sender takes back their own message with delete_own_message)."""
    allowed = await fetch_value(db, Q["delete_message"], user_id, conversation_id, message_id)
    if allowed is None:
        raise NotFound("message", message_id)
    if not allowed:
        raise NotPermitted("your role in this conversation may not delete messages")


async def list_message_versions(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    limit: int = 50,
    after: int = 0,
    max_bytes: int = MAX_PAGE_BYTES,
) -> MessageVersionPage:
    """The earlier versions of a message (kept by its edits), oldest first: those after
    version ``after``, at most ``limit``, and a page ends before its versions exceed
    ``max_bytes`` (but holds at least one). The message itself is the newest version. Empty
    for a message never edited, or retracted or deleted (the versions went with it). NotFound
    if the message is missing or the caller is not a member."""
    check_limit(limit)
    if not 0 <= after < 2**31:
        raise InvalidInput("after: a version number, 0 to 2147483647")
    rows = await fetch_all(
        db,
        Q["list_message_versions"],
        user_id,
        conversation_id,
        message_id,
        after,
        limit + 1,
        max_bytes,
    )
    if not rows:
        raise NotFound("message", message_id)
    if rows[0]["version"] is None:  # the message alone: no version in this range
        return MessageVersionPage(items=[], has_more=False)
    items = [row for row in rows if row["parts"] is not None]
    return MessageVersionPage.from_row(
        {"items": MessageVersion.from_rows(items), "has_more": len(items) < len(rows)}
    )


# --- search -----------------------------------------------------------------------------------

_MESSAGE_COLUMNS = tuple(Message.model_fields)
# A search cursor: the (rank, created_at, conversation_id, seq) of the last hit of a page, as
# URL-safe base64 of a JSON array. The rank is the float8 PostgreSQL computed, written in its
# shortest exact form (orjson), so it comes back as the very same double.
_SearchKey = tuple[float, datetime, UUID, int]


def encode_search_cursor(hit: SearchHit) -> str:
    """The opaque cursor of the page after ``hit``."""
    message = hit.message
    raw = orjson.dumps(
        [hit.rank, message.created_at.isoformat(), str(message.conversation_id), message.seq]
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_search_cursor(cursor: str) -> _SearchKey:
    """The key inside a search cursor; InvalidInput if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, created_at, conversation_id, seq = orjson.loads(raw)
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None or type(rank) not in (int, float) or type(seq) is not int:
            raise ValueError("not a search cursor")
        if not -(2**63) <= seq < 2**63:
            raise ValueError("seq out of range")
        return float(rank), when.astimezone(UTC), UUID(conversation_id), seq
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor is not valid") from exc


async def search_messages(
    db: Executor,
    *,
    user_id: UUID,
    search: MessageSearch,
    limit: int = 20,
    cursor: str | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
) -> SearchPage:
    """The caller's messages that match ``search``, best first: rank of the text query, then
    newest. Each hit carries its message, its conversation's title and a snippet safe to show
    as HTML (see SearchHit). A page also ends before its messages exceed ``max_bytes`` (but
    holds at least one); pass ``next_cursor`` back, with the same search, for the next one.

    Without ``q`` nor a role/tool/state/part-type filter, hits are the newest messages that
    match the other filters (rank 0). Another user's messages are never found.
    """
    check_limit(limit)
    after: tuple[Any, ...] = (None, None, None, None)
    if cursor is not None:
        after = decode_search_cursor(cursor)
    query, facets = search.query(), search.facets()
    stems: frozenset[str] = frozenset()
    if query is not None:
        rows = await fetch_all(
            db,
            Q["find_messages_matching"],
            user_id,
            list(query.terms),
            list(query.negated),
            list(query.clauses),
            facets,
            search.conversation_id,
            search.metadata,
            search.since,
            search.until,
            *after,
            limit + 1,
            max_bytes,
        )
        if rows:
            stems = frozenset(rows[0]["stems"] or ())
    elif facets:
        rows = await fetch_all(
            db,
            Q["find_messages_by_facets"],
            user_id,
            facets,
            search.conversation_id,
            search.metadata,
            search.since,
            search.until,
            *after[1:],
            limit + 1,
            max_bytes,
        )
    elif search.metadata is not None:
        rows = await fetch_all(
            db,
            Q["find_messages_by_metadata"],
            user_id,
            search.metadata,
            search.conversation_id,
            search.since,
            search.until,
            *after[1:],
            limit + 1,
            max_bytes,
        )
    else:
        rows = await fetch_all(
            db,
            Q["find_messages_recent"],
            user_id,
            search.conversation_id,
            search.since,
            search.until,
            *after[1:],
            limit + 1,
            max_bytes,
        )
    hits: list[SearchHit] = []
    for row in rows:
        if row["parts"] is None:  # the row after the page: only says that more exist
            continue
        message = Message.from_values({name: row[name] for name in _MESSAGE_COLUMNS})
        hits.append(
            SearchHit.from_values(
                {
                    "conversation_id": message.conversation_id,
                    "conversation_title": row["conversation_title"],
                    "message": message,
                    "snippet": snippet(message.content, query, stems),
                    "rank": row["rank"],
                }
            )
        )
    more = len(hits) < len(rows)
    return SearchPage(items=hits, next_cursor=encode_search_cursor(hits[-1]) if more else None)


async def list_messages_flagged(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    after: int = 0,
) -> MessagePage:
    """A page of the conversation's flagged messages (``integrity`` set), oldest first, after
    seq ``after``; ``has_more`` when more follow. NotFound if missing or not a member."""
    check_limit(limit)
    rows = await fetch_all(
        db, Q["list_messages_flagged"], user_id, conversation_id, after, limit + 1
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    items = [row for row in rows if row["seq"] is not None]
    return MessagePage.from_values(
        {"items": Message.from_rows(items[:limit]), "has_more": len(items) > limit}
    )
