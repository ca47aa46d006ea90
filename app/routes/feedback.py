"""Feedback on messages: set (PUT, 201 new / 200 replaced), get one's own, withdraw, and the
list of a conversation's feedback (README "Feedback")."""

from __future__ import annotations

from typing import get_args

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.endpoints import CURSOR, Answer, Endpoints, Json, Param, body_of, limit_param
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import InvalidInput
from dal.gateways import feedback
from dal.records.feedback import Feedback, FeedbackDraft, FeedbackPage, Rating
from dal.settings import Settings

endpoints = Endpoints()
_ONE = "/v1/conversations/{conversation_id:uuid}/messages/{message_id:uuid}/feedback"
_MANY = "/v1/conversations/{conversation_id:uuid}/feedback"
_RATINGS: dict[str, Rating] = {rating: rating for rating in get_args(Rating)}
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_RATING = Param(
    "rating",
    "only this rating (up or down); absent or empty: both",
    {"type": "string", "enum": ["", *_RATINGS]},
)


def _comment_limit(schema: Json, settings: Settings) -> None:
    """A comment is at most APP_MAX_FEEDBACK_COMMENT_CHARS characters (422 above)."""
    for option in schema["properties"]["comment"]["anyOf"]:
        if option.get("type") == "string":
            option["maxLength"] = settings.app_max_feedback_comment_chars


@endpoints.put(
    _ONE,
    "Set the caller's feedback on a message (201 when new, 200 when it replaced theirs)",
    body=FeedbackDraft,
    body_schema=_comment_limit,
    response=Feedback,
    status=201,
    answers=(Answer(200, "Replaced the caller's earlier feedback: the feedback", Feedback),),
    errors=(403, 409),
)
async def set_feedback(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, FeedbackDraft)
    result = await feedback.upsert_feedback(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        draft=draft,
        max_comment_chars=request.state["settings"].app_max_feedback_comment_chars,
    )
    return record_response(result.feedback, 201 if result.created else 200)


@endpoints.get(_ONE, "The caller's own feedback on a message", response=Feedback, errors=(403,))
async def get_feedback(request: Request[AppState]) -> Response:
    me = caller(request)
    found = await feedback.get_feedback(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return record_response(found)


@endpoints.delete(_ONE, "Withdraw the caller's feedback on a message", status=204, errors=(403,))
async def delete_feedback(request: Request[AppState]) -> Response:
    me = caller(request)
    await feedback.delete_feedback(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return no_content()


@endpoints.get(
    _MANY,
    "A page of the conversation's feedback, every member's, by message seq then user",
    response=FeedbackPage,
    params=(_LIMIT, CURSOR, _RATING),
    errors=(403,),
)
async def list_feedback(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    given = request.query_params.get("rating") or None
    rating = None if given is None else _RATINGS.get(given)
    if given is not None and rating is None:
        raise InvalidInput('rating must be "up" or "down"')
    page = await feedback.list_feedback(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        rating=rating,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)
