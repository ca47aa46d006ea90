"""Chat sessions: a conversation's activity, split where it paused longer than the timeout."""

from __future__ import annotations

from datetime import datetime

from dal.records.base import ListPage, Row


class ChatSession(Row):
    """One chat session of a conversation (README "Chat sessions")."""

    session_no: int
    started_at: datetime
    last_activity_at: datetime
    # When it was ended (POST .../sessions/end), or when it timed out: its last activity plus
    # APP_SESSION_TIMEOUT_SECONDS, once that is past. None while it is open.
    ended_at: datetime | None
    first_seq: int | None
    last_seq: int | None
    message_count: int
    # Whether the next message joins it (it has not ended and not timed out).
    open: bool


class ChatSessionPage(ListPage[ChatSession]):
    """Sessions by ``session_no``, newest first unless read with ``after``."""
