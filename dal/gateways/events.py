"""TEMPORARY (branch i12-sse): the event-log gateways of the team's contract, enough to test
the live streams; replaced by the lead's module when i12 is merged."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from dal.database import Executor, fetch_all, fetch_one
from dal.errors import NotFound
from dal.queries import Q
from dal.records.events import Event, EventDraft, EventPage


def _page(rows: list[object], kind: str, log_id: UUID) -> EventPage:
    if not rows:
        raise NotFound(kind, log_id)
    items = [
        Event(seq=r["seq"], type=r["type"], payload=r["payload"], created_at=r["created_at"])  # type: ignore[index]
        for r in rows
        if r["seq"] is not None  # type: ignore[index]
    ]
    return EventPage(items=items, last_seq=rows[0]["head"])  # type: ignore[index]


async def list_task_events(
    db: Executor, *, user_id: UUID, task_id: UUID, after: int, limit: int
) -> EventPage:
    rows = await fetch_all(db, Q["list_task_events"], user_id, task_id, after, limit)
    return _page(list(rows), "task", task_id)


async def list_conversation_events(
    db: Executor, *, user_id: UUID, conversation_id: UUID, after: int, limit: int
) -> EventPage:
    rows = await fetch_all(
        db, Q["list_conversation_events"], user_id, conversation_id, after, limit
    )
    return _page(list(rows), "conversation", conversation_id)


async def read_events(
    db: Executor,
    *,
    log: Literal["conversation", "task"],
    log_id: UUID,
    after: int,
    limit: int,
) -> list[Event]:
    if log == "task":
        rows = await fetch_all(db, Q["list_task_events_unscoped"], log_id, after, limit)
    else:
        rows = await fetch_all(db, Q["list_conversation_events_unscoped"], log_id, after, limit)
    return Event.from_rows(list(rows))


async def append_task_events(
    db: Executor, *, task_id: UUID, events: list[EventDraft], user_id: UUID | None = None
) -> list[Event]:
    out = []
    for draft in events:
        row = await fetch_one(db, Q["insert_task_event"], task_id, draft.type, draft.payload)
        if row is None:
            raise NotFound("task", task_id)
        out.append(Event.from_row(row))
    return out


async def append_conversation_events(
    db: Executor, *, user_id: UUID, conversation_id: UUID, events: list[EventDraft]
) -> list[Event]:
    out = []
    for draft in events:
        row = await fetch_one(
            db, Q["insert_conversation_event"], conversation_id, draft.type, draft.payload
        )
        if row is None:
            raise NotFound("conversation", conversation_id)
        out.append(Event.from_row(row))
    return out
