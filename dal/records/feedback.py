"""Feedback on messages: a member's rating (up or down), with an optional score and comment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from dal.records.base import INPUT, CursorPage, Row

Rating = Literal["up", "down"]

# The range of a score (README "Feedback"): 0 to 10 covers 0/1, five stars and 0-10 scales.
# The migration's message_feedback_score_check holds it too.
MIN_SCORE, MAX_SCORE = 0.0, 10.0
# The default of APP_MAX_FEEDBACK_COMMENT_CHARS, for callers that pass no limit of their own.
MAX_COMMENT_CHARS = 4000

# Text PostgreSQL can store: no NUL character.
Comment = Annotated[str, StringConstraints(pattern="^[^\\x00]*$")]


class FeedbackDraft(BaseModel):
    """The caller's feedback on a message: ``rating``, and optionally ``score`` (a finite
    number from 0 to 10) and ``comment`` (at most APP_MAX_FEEDBACK_COMMENT_CHARS characters).
    Setting it again replaces all three (a field left out is then null)."""

    model_config = INPUT
    rating: Rating
    score: float | None = Field(default=None, ge=MIN_SCORE, le=MAX_SCORE)
    comment: Comment | None = None


class Feedback(Row):
    """A member's feedback on a message (``message_id``, at ``seq`` in its conversation)."""

    conversation_id: UUID
    message_id: UUID
    seq: int
    user_id: UUID
    rating: Rating
    score: float | None
    comment: str | None
    created_at: datetime
    updated_at: datetime


class FeedbackSet(Row):
    """The result of setting feedback: ``created`` is False when it replaced earlier feedback."""

    feedback: Feedback
    created: bool


class FeedbackPage(CursorPage[Feedback]):
    """A conversation's feedback by message (``seq``), then by user; pass ``next_cursor`` back
    for the next page (None on the last one)."""
