"""Event logs (README "Event logs"): page a conversation's or a task's log, append to it.
Conversation logs are their members' (read: 'read', append: 'append'; a non-member finds
nothing), task logs their owner's; a worker appends to and reads a task's log unscoped
(``user_id=None``). Events the database writes itself (message.*, conversation.updated,
status) come from the triggers of migration 20261207_04, in the statement of the change."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import orjson

from dal.database import Executor, Record, fetch_all
from dal.errors import InvalidInput, NotFound, NotPermitted, TooLarge
from dal.queries import Q
from dal.records.events import (
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_APPEND,
    Event,
    EventDraft,
    EventPage,
    LogKind,
)

# The most events one page or read returns.
MAX_EVENTS_PER_PAGE = 1000
_EVENT_COLUMNS = ("seq", "type", "payload", "created_at")


def _check_page(after: int, limit: int) -> None:
    if not 0 <= after < 2**63:
        raise InvalidInput("after must be a seq: 0 or more")
    if not 1 <= limit <= MAX_EVENTS_PER_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_EVENTS_PER_PAGE}")


def _page(rows: Sequence[Record]) -> EventPage:
    # Each row is an event's columns, then the log's head (zip stops before it); a row of
    # NULL event columns is an empty page's.
    if rows[0]["seq"] is None:
        return EventPage.from_values({"items": [], "last_seq": rows[0]["last_seq"]})
    new, names = Event.from_values, _EVENT_COLUMNS
    events = [new(dict(zip(names, row, strict=False))) for row in rows]
    return EventPage.from_values({"items": events, "last_seq": rows[0]["last_seq"]})


async def list_conversation_events(
    db: Executor, *, user_id: UUID, conversation_id: UUID, after: int = 0, limit: int = 100
) -> EventPage:
    """Up to ``limit`` events of a conversation's log after seq ``after``, for a member who
    may read it; NotFound otherwise."""
    _check_page(after, limit)
    rows = await fetch_all(
        db, Q["list_conversation_events"], user_id, conversation_id, after, limit
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    return _page(rows)


async def list_task_events(
    db: Executor, *, task_id: UUID, user_id: UUID | None, after: int = 0, limit: int = 100
) -> EventPage:
    """Up to ``limit`` events of a task's log after seq ``after``: the owner's
    (``user_id``), or any task's with ``user_id=None`` (a worker's); NotFound otherwise."""
    _check_page(after, limit)
    rows = await fetch_all(db, Q["list_task_events"], user_id, task_id, after, limit)
    if not rows:
        raise NotFound("task", task_id)
    return _page(rows)


async def list_events(
    db: Executor, *, log: LogKind, log_id: UUID, after: int, limit: int = MAX_EVENTS_PER_PAGE
) -> list[Event]:
    """Up to ``limit`` events of a log after seq ``after``, unscoped: for the app's live
    streams, whose routes checked the reader first. A missing log reads as empty."""
    _check_page(after, limit)
    query = Q["list_events_of_conversation"] if log == "conversation" else Q["list_events_of_task"]
    return Event.from_rows(await fetch_all(db, query, log_id, after, limit))


def _batch(events: Sequence[EventDraft], max_bytes: int) -> tuple[list[str], list[object]]:
    if not 1 <= len(events) <= MAX_EVENTS_PER_APPEND:
        raise InvalidInput(f"events: 1 to {MAX_EVENTS_PER_APPEND} at a time")
    for index, event in enumerate(events):
        size = len(orjson.dumps(event.payload))
        if size > max_bytes:
            raise TooLarge(
                f"events[{index}].payload: at most {max_bytes} bytes as JSON, this is {size} "
                "(APP_MAX_EVENT_BYTES)",
                code="event_too_large",
            )
    return [event.type for event in events], [event.payload for event in events]


async def append_conversation_events(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    events: Sequence[EventDraft],
    max_bytes: int = MAX_EVENT_BYTES,
) -> list[Event]:
    """Append events, in order, to a conversation's log as a member whose role may append;
    all or none. NotFound for a non-member, NotPermitted for a role that may not append,
    TooLarge (event_too_large) for a payload over ``max_bytes`` as JSON."""
    types, payloads = _batch(events, max_bytes)
    rows = await fetch_all(
        db, Q["append_conversation_events"], user_id, conversation_id, types, payloads
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    if rows[0]["forbidden"]:
        raise NotPermitted("your role in this conversation may not append to it")
    return [Event.from_values(dict(zip(_EVENT_COLUMNS, row, strict=False))) for row in rows]


async def append_task_events(
    db: Executor,
    *,
    task_id: UUID,
    events: Sequence[EventDraft],
    user_id: UUID | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> list[Event]:
    """Append events, in order, to a task's log: the owner's (``user_id``) or, with
    ``user_id=None``, a worker's; all or none. NotFound if there is no such task (of the
    owner's); TooLarge (event_too_large) for a payload over ``max_bytes`` as JSON."""
    types, payloads = _batch(events, max_bytes)
    rows = await fetch_all(db, Q["append_task_events"], user_id, task_id, types, payloads)
    if not rows:
        raise NotFound("task", task_id)
    return Event.from_rows(rows)
