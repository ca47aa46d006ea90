"""Messages of a conversation, scoped by the caller (``user_id``) through the conversation."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from dal.database import Executor, Record, fetch_all, fetch_one, fetch_value
from dal.errors import Conflict, InvalidInput, NotFound
from dal.ids import new_id
from dal.queries import Q
from dal.records import Appended, Message, MessageDraft, MessagePage, MessagePatch

MAX_PAGE_SIZE = 200
_UNIQUE_ID = "messages_conversation_id_id_key"


def _message(row: Record) -> Message:
    return Message.from_row(row)


async def insert_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, draft: MessageDraft
) -> Appended:
    """Append a message (one statement; seq = previous + 1, gapless under concurrency).

    If ``draft.id`` is already in the conversation, nothing is written and the stored message
    comes back with ``created=False``. NotFound if the conversation is missing or not theirs.
    """
    message_id = draft.id or new_id()
    try:
        row = await fetch_one(
            db,
            Q["insert_message"],
            user_id,
            conversation_id,
            message_id,
            draft.role,
            draft.parts,
            draft.metadata,
            draft.status,
        )
    except Conflict as exc:
        if exc.constraint != _UNIQUE_ID:
            raise
        # A concurrent retry of the same id got there first: return what it stored.
        return Appended(
            message=await get_message(
                db, user_id=user_id, conversation_id=conversation_id, message_id=message_id
            ),
            created=False,
        )
    if row is None:
        raise NotFound("conversation", conversation_id)
    values = dict(row.items())
    created = values.pop("created")
    return Appended.from_values({"message": Message.from_values(values), "created": created})


async def get_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> Message:
    """One message of the caller's conversation; NotFound if missing or not theirs."""
    row = await fetch_one(db, Q["get_message"], user_id, conversation_id, message_id)
    if row is None:
        raise NotFound("message", message_id)
    return _message(row)


def _page(
    rows: Sequence[Record], limit: int, conversation_id: UUID, *, newest: bool
) -> MessagePage:
    if not rows:
        raise NotFound("conversation", conversation_id)
    if rows[0]["seq"] is None:  # the conversation's row alone: no message in this range
        return MessagePage(items=[], has_more=False)
    has_more = len(rows) > limit
    if has_more:
        # The extra row is the one farthest from the cursor: the oldest when paging backwards.
        rows = rows[1:] if newest else rows[:limit]
    return MessagePage.from_row({"items": Message.from_rows(rows), "has_more": has_more})


async def list_messages(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    before: int | None = None,
    after: int | None = None,
) -> MessagePage:
    """A page of messages, always oldest first.

    With neither cursor: the newest ``limit``. ``before=S``: the page just before seq S;
    ``after=S``: the page just after it. ``has_more`` says whether more exist beyond the page
    in the direction of travel (older for newest/before, newer for after).
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if before is not None and after is not None:
        raise InvalidInput("give before or after, not both")
    if after is not None:
        rows = await fetch_all(
            db, Q["list_messages_after"], user_id, conversation_id, after, limit + 1
        )
        return _page(rows, limit, conversation_id, newest=False)
    if before is not None:
        rows = await fetch_all(
            db, Q["list_messages_before"], user_id, conversation_id, before, limit + 1
        )
    else:
        rows = await fetch_all(db, Q["list_messages_latest"], user_id, conversation_id, limit + 1)
    return _page(rows, limit, conversation_id, newest=True)


async def update_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID, patch: MessagePatch
) -> Message:
    """Edit a message in one statement (see MessagePatch). Conflict when appending to a
    complete message or reopening one; NotFound if missing or not the caller's."""
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
    )
    if row is None:
        # Tell why (error path only): missing, or a streaming-only change to a complete message.
        await get_message(
            db, user_id=user_id, conversation_id=conversation_id, message_id=message_id
        )
        raise Conflict(f"message {message_id} is complete: it can no longer be streamed to")
    return _message(row)


async def delete_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> None:
    """Delete one message, keeping the conversation's counters right; NotFound if missing."""
    deleted = await fetch_value(db, Q["delete_message"], user_id, conversation_id, message_id)
    if deleted is None:
        raise NotFound("message", message_id)
