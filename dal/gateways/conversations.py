"""Conversations, always scoped by the caller (``user_id``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from dal.cursors import check_limit, decode_keyset, encode_keyset, next_cursor
from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    NotPermitted,
    StaleVersion,
)
from dal.ids import new_id
from dal.queries import Q
from dal.records.conversations import (
    Conversation,
    ConversationDraft,
    ConversationPage,
    ConversationPatch,
    CreatedConversation,
)
from dal.records.search import parse_query

# The default of APP_MAX_PAGE_BYTES, for callers that pass no limit of their own.
MAX_PAGE_BYTES = 4 * 1024 * 1024
# A thread serves one conversation of its user (conversations.thread_id is the link).
THREAD_LINK_KEY = "conversations_user_thread_key"


def thread_link_conflict(exc: Conflict, thread_id: str | None) -> Conflict:
    """The Conflict to raise for ``exc``: a clear one when the thread already serves
    another conversation of the user."""
    if exc.constraint != THREAD_LINK_KEY:
        return exc
    return Conflict(
        f"thread {thread_id} already serves another conversation: "
        "set that conversation's thread_id to null first",
        constraint=THREAD_LINK_KEY,
    )


def _key(conversation: Conversation) -> str:
    return str(conversation.id)


def encode_cursor(conversation: Conversation) -> str:
    """An opaque keyset cursor: the (updated_at, id) of the last conversation of a page."""
    return encode_keyset(conversation.updated_at, _key(conversation))


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (updated_at, id) inside a cursor; InvalidInput if it is not one of ours."""
    updated_at, key = decode_keyset(cursor)
    try:
        return updated_at, UUID(key)
    except ValueError as exc:
        raise InvalidInput("cursor is not valid") from exc


async def create_conversation(
    db: Executor, *, user_id: UUID, draft: ConversationDraft
) -> CreatedConversation:
    """Create a conversation for the user, idempotently when ``draft.id`` is given.

    If that id is taken by a conversation this same request created (same title, metadata,
    tags and thread), nothing is written and it comes back as it is now with
    ``created=False``; any other taken id (other content, or another user's conversation: ids
    are global) is IdempotencyMismatch, the same answer either way. NotFound if the user does
    not exist. A lost race with a concurrent create raises nothing that aborts a caller's
    transaction.
    """
    args = (user_id, draft.id or new_id(), draft.title, draft.metadata, draft.tags)
    try:
        row = await fetch_one(db, Q["insert_conversation"], *args, draft.thread_id, draft.kind)
    except Conflict as exc:
        raise thread_link_conflict(exc, draft.thread_id) from exc
    if row is not None:
        return CreatedConversation.from_values(
            {"conversation": Conversation.from_row(row), "created": True}
        )
    row = await fetch_one(db, Q["get_conversation_retried"], *args, draft.thread_id)
    if row is None:
        raise IdempotencyMismatch(
            f"conversation {draft.id} already exists and was not created by this request: "
            "use a new id"
        )
    return CreatedConversation.from_values(
        {"conversation": Conversation.from_row(row), "created": False}
    )


async def insert_conversation(
    db: Executor, *, user_id: UUID, draft: ConversationDraft
) -> Conversation:
    """``create_conversation``'s conversation, whether created now or by an earlier try."""
    return (await create_conversation(db, user_id=user_id, draft=draft)).conversation


async def get_conversation(db: Executor, *, user_id: UUID, conversation_id: UUID) -> Conversation:
    """The caller's conversation; NotFound if it is missing or belongs to someone else."""
    row = await fetch_one(db, Q["get_conversation"], user_id, conversation_id)
    if row is None:
        raise NotFound("conversation", conversation_id)
    return Conversation.from_row(row)


async def list_conversations(
    db: Executor,
    *,
    user_id: UUID,
    limit: int = 50,
    cursor: str | None = None,
    q: str | None = None,
    tags: list[str] | None = None,
    tags_mode: Literal["any", "all"] = "any",
    metadata: dict[str, Any] | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
) -> ConversationPage:
    """One page of the caller's conversations, most recent activity first.

    Filters, all optional and combined: ``q`` (web-search syntax, README "Search"): the title
    or a message's text matches; ``tags``: tagged with any of them (``tags_mode="all"``: with
    all of them); ``metadata``: the metadata contains this object. InvalidInput for a bad
    ``q`` or filter, naming it. A page also ends before its conversations exceed
    ``max_bytes`` (title, metadata, tags and thread), but holds at least one. Pass the page's
    ``next_cursor`` back (with the same filters) to get the next one; it is None on the last
    page.
    """
    check_limit(limit)
    if tags_mode not in ("any", "all"):
        raise InvalidInput('tags_mode must be "any" or "all"')
    if tags is not None and not tags:
        tags = None
    if tags is not None and (
        len(tags) > 100 or not all(isinstance(t, str) and 1 <= len(t) <= 100 for t in tags)
    ):
        raise InvalidInput("tag: at most 100 tags, each 1 to 100 characters")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object")
    after: tuple[datetime | None, UUID | None] = (None, None)
    if cursor is not None:
        after = decode_cursor(cursor)
    if q is not None:
        try:
            query = parse_query(q)
        except ValueError as exc:
            raise InvalidInput(f"q: {exc}") from exc
        if all(query.negated):
            raise InvalidInput("q: give at least one word that is not excluded")
        rows = await fetch_all(
            db,
            Q["list_conversations_matching"],
            user_id,
            list(query.terms),
            list(query.negated),
            list(query.clauses),
            tags,
            tags_mode == "all",
            metadata,
            *after,
            limit + 1,
            max_bytes,
        )
    elif tags is not None:
        rows = await fetch_all(
            db,
            Q["list_conversations_tagged"],
            user_id,
            tags,
            tags_mode == "all",
            metadata,
            *after,
            limit + 1,
            max_bytes,
        )
    elif metadata is not None:
        rows = await fetch_all(
            db, Q["list_conversations_by_metadata"], user_id, metadata, *after, limit + 1, max_bytes
        )
    elif cursor is None:
        rows = await fetch_all(db, Q["list_conversations"], user_id, limit + 1, max_bytes)
    else:
        rows = await fetch_all(
            db, Q["list_conversations_before"], user_id, *after, limit + 1, max_bytes
        )
    # The row after the page (past the count or the bytes) comes without its metadata.
    page = [row for row in rows if row["metadata"] is not None]
    items = Conversation.from_rows(page)
    more = len(page) < len(rows)
    return ConversationPage(items=items, next_cursor=next_cursor(items, more, _key))


async def update_conversation(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    patch: ConversationPatch,
    expected_version: int | None = None,
) -> Conversation:
    """Apply ``patch`` and bump the version. With ``expected_version``, StaleVersion if the
    conversation has changed since; NotFound if it is missing or the caller is not a member;
    NotPermitted if the caller's role may not change it (or links a thread, which only the
    owner does)."""
    try:
        row = await fetch_one(
            db,
            Q["update_conversation"],
            user_id,
            conversation_id,
            patch.title,
            patch.metadata,
            patch.tags,
            expected_version,
            patch.thread_id,
            "thread_id" in patch.model_fields_set,  # null clears the link, absent keeps it
            patch.tool_integrity,
        )
    except Conflict as exc:
        raise thread_link_conflict(exc, patch.thread_id) from exc
    if row is None:
        # Missing or not a member (NotFound), a stale version, or a role that may not.
        current = await get_conversation(db, user_id=user_id, conversation_id=conversation_id)
        if expected_version is None or current.version == expected_version:
            if "thread_id" in patch.model_fields_set and current.user_id != user_id:
                raise NotPermitted("only the conversation's owner links it to a thread")
            raise NotPermitted("your role in this conversation may not change it")
        raise StaleVersion(
            f"conversation {conversation_id} is at version {current.version}, "
            f"not {expected_version}"
        )
    return Conversation.from_row(row)


async def delete_conversation(db: Executor, *, user_id: UUID, conversation_id: UUID) -> None:
    """Delete a conversation and its messages (its owner's right); NotFound if missing or the
    caller is not a member, NotPermitted for another member."""
    deleted = await fetch_value(db, Q["delete_conversation"], user_id, conversation_id)
    if deleted is None:
        await get_conversation(db, user_id=user_id, conversation_id=conversation_id)
        raise NotPermitted("only the conversation's owner may delete it")
