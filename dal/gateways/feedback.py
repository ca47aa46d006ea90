"""Feedback on messages, scoped by membership: set (upsert), withdraw, get one's own, list a
conversation's. Each is one statement that also checks the caller's right (see
queries/feedback.sql): a non-member gets NotFound, a member without the right NotPermitted."""

from __future__ import annotations

from uuid import UUID

from dal.cursors import check_limit, decode_seq_keyset, encode_seq_keyset
from dal.database import Executor, Record, fetch_all, fetch_one
from dal.errors import Conflict, InvalidInput, NotFound, NotPermitted
from dal.queries import Q
from dal.records.feedback import (
    MAX_COMMENT_CHARS,
    Feedback,
    FeedbackDraft,
    FeedbackPage,
    FeedbackSet,
    Rating,
)

_FEEDBACK_COLUMNS = tuple(Feedback.model_fields)
# The keyset before the first row: seqs start at 1.
_START = (0, UUID(int=0))


def _feedback(row: Record) -> Feedback:
    return Feedback.from_values({name: row[name] for name in _FEEDBACK_COLUMNS})


def _not_permitted(action: str) -> NotPermitted:
    return NotPermitted(f"your role in this conversation may not {action}")


async def upsert_feedback(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    draft: FeedbackDraft,
    max_comment_chars: int = MAX_COMMENT_CHARS,
) -> FeedbackSet:
    """Set the caller's feedback on a message, replacing theirs if any (``created`` says which),
    and keep the message's ``feedback_up``/``feedback_down`` right, in one statement.

    NotFound if the caller is not a member or the message is missing; NotPermitted if their
    role lacks the 'feedback' right; Conflict if the message was retracted; InvalidInput for
    a comment over ``max_comment_chars`` characters (checked before anything is read).
    """
    if draft.comment is not None and len(draft.comment) > max_comment_chars:
        raise InvalidInput(
            f"comment: a feedback comment holds at most {max_comment_chars} characters "
            "(APP_MAX_FEEDBACK_COMMENT_CHARS)"
        )
    args = (user_id, conversation_id, message_id, draft.rating, draft.score, draft.comment)
    row = await fetch_one(db, Q["upsert_feedback"], *args)
    if (
        row is not None
        and row["allowed"]
        and row["seq"] is not None
        and not row["retracted"]
        and row["created"] is None
    ):
        # Not retracted, yet nothing written: the caller's own first feedback on this message
        # committed while this statement ran; a new statement (a new snapshot) replaces it.
        row = await fetch_one(db, Q["upsert_feedback"], *args)
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise _not_permitted("give feedback")
    if row["seq"] is None:
        raise NotFound("message", message_id)
    if row["retracted"]:
        raise Conflict(f"message {message_id} was retracted: it takes no feedback")
    if row["created"] is None:  # pragma: no cover - needs a third concurrent writer to lose twice
        raise Conflict("the feedback changed concurrently: try again")
    return FeedbackSet.from_values({"feedback": _feedback(row), "created": row["created"]})


async def delete_feedback(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> None:
    """Withdraw the caller's feedback on a message (its counters follow, in one statement).
    NotFound if not a member, the message is missing or the caller gave none; NotPermitted if
    their role lacks the 'feedback' right."""
    row = await fetch_one(db, Q["delete_feedback"], user_id, conversation_id, message_id)
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise _not_permitted("give feedback")
    if row["seq"] is None:
        raise NotFound("message", message_id)
    if row["rating"] is None:
        raise NotFound("feedback on message", message_id)


async def get_feedback(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> Feedback:
    """The caller's own feedback on a message. NotFound if not a member, the message is
    missing or the caller gave none; NotPermitted if their role lacks the 'read' right."""
    row = await fetch_one(db, Q["get_feedback"], user_id, conversation_id, message_id)
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise _not_permitted("read")
    if row["message_id"] is None:
        raise NotFound("message", message_id)
    if row["rating"] is None:
        raise NotFound("feedback on message", message_id)
    return _feedback(row)


async def list_feedback(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    rating: Rating | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> FeedbackPage:
    """A page of the conversation's feedback (every member's), by message ``seq`` then user;
    only ``rating`` when given. Pass ``next_cursor`` back for the next page. NotFound if the
    caller is not a member; NotPermitted if their role lacks the 'read' right."""
    check_limit(limit)
    after = _START if not cursor else decode_seq_keyset(cursor)
    rows = await fetch_all(
        db, Q["list_feedback"], user_id, conversation_id, *after, rating, limit + 1
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    if not rows[0]["allowed"]:
        raise _not_permitted("read")
    items = [_feedback(row) for row in rows[:limit] if row["seq"] is not None]
    more = len(rows) > limit
    return FeedbackPage.from_values(
        {
            "items": items,
            "next_cursor": encode_seq_keyset(items[-1].seq, items[-1].user_id) if more else None,
        }
    )
