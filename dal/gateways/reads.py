"""Read state of conversation members, scoped by membership: a non-member gets NotFound, a
member whose role may not read gets NotPermitted (README "Read state and unread")."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from dal.cursors import MAX_PAGE_SIZE, check_limit
from dal.database import Executor, Record, fetch_all, fetch_one
from dal.errors import InvalidInput, NotFound, NotPermitted
from dal.queries import Q
from dal.records.messages import Message, MessagePage
from dal.records.reads import (
    MessageDelivery,
    MessageDeliveryPage,
    MessageReceipts,
    ReadState,
    Receipt,
    UnreadCount,
    UnreadCounts,
    UnreadSummary,
    delivery_status,
)

# Unread counts stop here: a count that reaches it reads "at least this many" (capped), so a
# conversation costs at most this many index entries however far behind its reader is.
UNREAD_CAP = 100
# The total over all of a user's conversations stops here (capped): the count ends after
# this many unread messages, however many conversations are behind.
UNREAD_TOTAL_CAP = 1000
# The MAX_PAGE_BYTES of dal.gateways.messages (the app passes APP_MAX_PAGE_BYTES).
MAX_PAGE_BYTES = 4 * 1024 * 1024
# Below every UUID: the keyset start of the first page.
_FIRST = UUID(int=0)


def _not_member(conversation_id: UUID) -> NotFound:
    return NotFound("conversation", conversation_id)


def _forbidden() -> NotPermitted:
    return NotPermitted("your role in this conversation may not read it")


def _check_cap(cap: int) -> None:
    if not 1 <= cap <= 10_000:
        raise InvalidInput("the unread cap is 1 to 10000")


def _cursor(cursor: str | None) -> UUID:
    if not cursor:
        return _FIRST
    try:
        return UUID(cursor)
    except ValueError as exc:
        raise InvalidInput("cursor is not valid") from exc


def _read_state(row: Record | None, conversation_id: UUID) -> ReadState:
    if row is None:
        raise _not_member(conversation_id)
    values = dict(row.items())
    if not values.pop("allowed"):
        raise _forbidden()
    return ReadState.from_values(values)


async def get_read_state(
    db: Executor, *, user_id: UUID, conversation_id: UUID, cap: int = UNREAD_CAP
) -> ReadState:
    """The caller's read and delivery positions in a conversation and its unread count (at
    most ``cap``). NotFound if not a member."""
    _check_cap(cap)
    row = await fetch_one(db, Q["get_read_state"], user_id, conversation_id, cap)
    return _read_state(row, conversation_id)


async def update_read_state(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    seq: int | None = None,
    mark_read: bool = True,
    cap: int = UNREAD_CAP,
) -> ReadState:
    """Mark the conversation read (``mark_read``; delivered too) or delivered only, up to
    ``seq`` (None: its last message; a larger seq is clamped to it), in one statement.
    Positions never move backwards: an older seq changes nothing. NotFound if not a member.
    The positions returned are at least those asked for (a concurrent mark may have moved them
    further)."""
    _check_cap(cap)
    if seq is not None and seq < 0:
        raise InvalidInput("seq is 0 or more")
    row = await fetch_one(db, Q["update_read_state"], user_id, conversation_id, cap, seq, mark_read)
    return _read_state(row, conversation_id)


async def list_unread_counts(
    db: Executor,
    *,
    user_id: UUID,
    limit: int = 50,
    cursor: str | None = None,
    cap: int = UNREAD_CAP,
    total_cap: int = UNREAD_TOTAL_CAP,
) -> UnreadSummary:
    """The caller's unread messages over all their conversations, in one round trip: how
    many conversations have some (exact), the total (each conversation counting at most
    ``cap``, the whole at most ``total_cap``; ``capped`` when it is a lower bound), and one
    page of the conversations that have some, by conversation id, each with its count (at
    most ``cap``); pass ``next_cursor`` back for the next page."""
    check_limit(limit)
    _check_cap(cap)
    if not cap <= total_cap <= 1_000_000:
        raise InvalidInput("the unread total cap is the cap to 1000000")
    rows = await fetch_all(
        db, Q["list_unread_counts"], user_id, _cursor(cursor), cap, limit + 1, total_cap
    )
    first = rows[0]
    listed = [row for row in rows if row["conversation_id"] is not None]
    page = listed[:limit]
    items = [
        UnreadCount.from_values(
            {
                "conversation_id": row["conversation_id"],
                "last_read_seq": row["last_read_seq"],
                "unread": row["unread"],
                "capped": row["unread"] >= cap,
            }
        )
        for row in page
    ]
    return UnreadSummary.from_values(
        {
            "total": first["total"],
            "conversations": first["conversations"],
            "capped": first["capped"],
            "items": items,
            "next_cursor": str(page[-1]["conversation_id"]) if len(listed) > limit else None,
        }
    )


async def list_unread_counts_of(
    db: Executor,
    *,
    user_id: UUID,
    conversation_ids: Sequence[UUID],
    cap: int = UNREAD_CAP,
) -> UnreadCounts:
    """The caller's unread count (at most ``cap``) in each of ``conversation_ids`` (at most
    MAX_PAGE_SIZE: a page of the conversation list), by conversation id; conversations the
    caller is not a member of are left out."""
    _check_cap(cap)
    if len(conversation_ids) > MAX_PAGE_SIZE:
        raise InvalidInput(f"at most {MAX_PAGE_SIZE} conversations at once")
    rows = await fetch_all(
        db, Q["list_unread_counts_of"], user_id, list(dict.fromkeys(conversation_ids)), cap
    )
    return UnreadCounts.from_values({"items": UnreadCount.from_rows(rows)})


async def list_unread_messages(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    after: int = 0,
    max_bytes: int = MAX_PAGE_BYTES,
) -> MessagePage:
    """The caller's unread messages of a conversation, oldest first, after seq ``after`` too
    (the last seq of the previous page). A page also ends before its messages exceed
    ``max_bytes`` but holds at least one; ``has_more`` when more unread ones follow. Reading
    them marks nothing. NotFound if not a member."""
    check_limit(limit)
    if after < 0:
        raise InvalidInput("after is 0 or more")
    rows = await fetch_all(
        db, Q["list_unread_messages"], user_id, conversation_id, after, limit + 1, max_bytes
    )
    if not rows:
        raise _not_member(conversation_id)
    if not rows[0]["allowed"]:
        raise _forbidden()
    if rows[0]["seq"] is None:
        return MessagePage(items=[], has_more=False)
    fields = tuple(Message.model_fields)
    # The row after the page (past the count or the bytes) comes without its parts.
    items = [
        Message.from_values({name: row[name] for name in fields})
        for row in rows
        if row["parts"] is not None
    ]
    return MessagePage.from_values({"items": items, "has_more": len(items) < len(rows)})


async def list_message_receipts(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    limit: int = 50,
    cursor: str | None = None,
) -> MessageReceipts:
    """Read receipts of a message: its recipients (the members other than its sender who had
    joined when it was written), how many have read it and have it delivered, its delivery
    status, and one page of the recipients by user id (pass ``next_cursor`` back). NotFound
    if not a member or no such message."""
    check_limit(limit)
    rows = await fetch_all(
        db,
        Q["list_message_receipts"],
        user_id,
        conversation_id,
        message_id,
        _cursor(cursor),
        limit + 1,
    )
    if not rows:
        raise _not_member(conversation_id)
    first = rows[0]
    if not first["allowed"]:
        raise _forbidden()
    if first["seq"] is None:
        raise NotFound("message", message_id)
    listed = [row for row in rows if row["user_id"] is not None]
    page = listed[:limit]
    return MessageReceipts.from_values(
        {
            "message_id": message_id,
            "seq": first["seq"],
            "sender_id": first["sender_id"],
            "status": delivery_status(
                first["recipients"], first["read_count"], first["delivered_count"]
            ),
            "recipients": first["recipients"],
            "read_count": first["read_count"],
            "delivered_count": first["delivered_count"],
            "items": [
                Receipt.from_values(
                    {
                        "user_id": row["user_id"],
                        "role": row["role"],
                        "read": row["read"],
                        "delivered": row["delivered"],
                    }
                )
                for row in page
            ],
            "next_cursor": str(page[-1]["user_id"]) if len(listed) > limit else None,
        }
    )


async def list_message_deliveries(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    after: int = 0,
    limit: int = 50,
) -> MessageDeliveryPage:
    """The delivery status of the messages after seq ``after``, by seq (a page of messages'
    worth in one round trip): per message its recipients and how many have read it and have
    it delivered. NotFound if not a member."""
    check_limit(limit)
    if after < 0:
        raise InvalidInput("after is 0 or more")
    rows = await fetch_all(
        db, Q["list_message_deliveries"], user_id, conversation_id, after, limit + 1
    )
    if not rows:
        raise _not_member(conversation_id)
    if not rows[0]["allowed"]:
        raise _forbidden()
    listed = [row for row in rows if row["seq"] is not None]
    items = [
        MessageDelivery.from_values(
            {
                "id": row["id"],
                "seq": row["seq"],
                "sender_id": row["sender_id"],
                "status": delivery_status(
                    row["recipients"], row["read_count"], row["delivered_count"]
                ),
                "recipients": row["recipients"],
                "read_count": row["read_count"],
                "delivered_count": row["delivered_count"],
            }
        )
        for row in listed[:limit]
    ]
    return MessageDeliveryPage.from_values({"items": items, "has_more": len(listed) > limit})
