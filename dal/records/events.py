"""Event logs: a conversation's or a task's append-only log of typed events (README "Event
logs"), each numbered by a gapless per-log ``seq`` from 1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from dal.records.base import INPUT, JsonObject, Row

# Which log: a conversation's or a task's.
LogKind = Literal["conversation", "task"]

# An event's type: lowercase, dotted (plan, step.started, tool.output, message.created, ...);
# the migration's CHECK holds the same pattern.
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]

# The default of APP_MAX_EVENT_BYTES: one event's payload, as compact JSON, in bytes.
MAX_EVENT_BYTES = 64 * 1024
# The most events one append writes.
MAX_EVENTS_PER_APPEND = 100


class EventDraft(BaseModel):
    """An event to append: its ``type`` and a JSON object ``payload`` (at most
    APP_MAX_EVENT_BYTES as JSON)."""

    model_config = INPUT
    type: EventType
    payload: JsonObject = Field(default_factory=dict)


class EventBatch(BaseModel):
    """Events to append to one log, in order (1 to 100): written together or not at all."""

    model_config = INPUT
    events: list[EventDraft] = Field(min_length=1, max_length=MAX_EVENTS_PER_APPEND)


class Event(Row):
    """One event of a log: ``seq`` (its place, gapless from 1), ``type``, ``payload``, and when
    it was written."""

    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class EventPage(Row):
    """A page of a log in seq order, and ``last_seq``, the log's head when it was read: pass
    the last item's seq as ``after`` for the next page (none is left once it is ``last_seq``)."""

    items: list[Event]
    last_seq: int


class EventList(Row):
    """Events just written, in seq order."""

    items: list[Event]
