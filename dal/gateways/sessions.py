"""Chat sessions of a conversation (queries/sessions.sql), scoped by the caller: a
non-member gets NotFound. Messages start and join them (``messages.insert_message``)."""

from __future__ import annotations

from uuid import UUID

from dal.cursors import check_limit
from dal.database import Executor, fetch_all, fetch_one
from dal.errors import Conflict, InvalidInput, NotFound, NotPermitted
from dal.queries import Q
from dal.records.sessions import ChatSession, ChatSessionPage

# The default of APP_SESSION_TIMEOUT_SECONDS (as dal.gateways.messages has it).
SESSION_TIMEOUT_SECONDS = 900.0
_NO_MORE = 2**62


async def list_sessions(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    before: int | None = None,
    after: int | None = None,
    session_timeout: float = SESSION_TIMEOUT_SECONDS,
) -> ChatSessionPage:
    """A page of the conversation's sessions. Newest first (sessions numbered below
    ``before``, all when None), or oldest first with ``after`` (numbered above it; 0 from
    the first). ``has_more``: more follow in that order. NotFound if missing or the caller is
    not a member."""
    check_limit(limit)
    if before is not None and after is not None:
        raise InvalidInput("give before or after, not both")
    if after is not None:
        rows = await fetch_all(
            db,
            Q["list_sessions_after"],
            user_id,
            conversation_id,
            session_timeout,
            after,
            limit + 1,
        )
    else:
        rows = await fetch_all(
            db,
            Q["list_sessions_before"],
            user_id,
            conversation_id,
            session_timeout,
            _NO_MORE if before is None else before,
            limit + 1,
        )
    if not rows:
        raise NotFound("conversation", conversation_id)
    items = [row for row in rows if row["session_no"] is not None]
    return ChatSessionPage.from_values(
        {"items": ChatSession.from_rows(items[:limit]), "has_more": len(items) > limit}
    )


async def update_session_end(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    session_timeout: float = SESSION_TIMEOUT_SECONDS,
) -> ChatSession:
    """End the conversation's current session (the next message starts a new one) and
    return it; one already ended or timed out keeps its end. NotPermitted when the caller's
    role may not end sessions; Conflict when the conversation has had no message yet;
    NotFound if missing or the caller is not a member."""
    row = await fetch_one(db, Q["update_session_end"], user_id, conversation_id, session_timeout)
    if row is None:
        raise NotFound("conversation", conversation_id)
    values = dict(row.items())
    if not values.pop("allowed"):
        raise NotPermitted("your role in this conversation may not end its chat session")
    if values["session_no"] is None:
        raise Conflict("this conversation has no chat session yet: no message was appended")
    return ChatSession.from_values(values)
