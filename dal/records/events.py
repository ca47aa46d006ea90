"""TEMPORARY (branch i12-sse): the event-log records of the team's contract, replaced by the
lead's module when i12 is merged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from dal.records.base import INPUT, Row


class Event(Row):
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class EventDraft(BaseModel):
    model_config = INPUT
    type: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    payload: dict[str, Any] = Field(default_factory=dict)


class EventPage(BaseModel):
    items: list[Event]
    last_seq: int
