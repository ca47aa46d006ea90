"""Chat sessions of the caller's conversations: list them, end the current one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import INT8_MAX
from app.endpoints import Endpoints, Param, limit_param
from app.responses import record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import sessions
from dal.records.sessions import ChatSession, ChatSessionPage

endpoints = Endpoints()
_MANY = "/v1/conversations/{conversation_id:uuid}/sessions"
_NO = {"type": "integer", "minimum": 0, "maximum": INT8_MAX}
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_BEFORE = Param("before", "newest first, the sessions numbered below this (not with after)", _NO)
_AFTER = Param(
    "after",
    "oldest first, the sessions numbered above this; 0 from the first (not with before)",
    _NO,
)


@endpoints.get(
    _MANY,
    "A page of chat sessions: newest first, or oldest first with after",
    response=ChatSessionPage,
    params=(_LIMIT, _BEFORE, _AFTER),
)
async def list_sessions(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await sessions.list_sessions(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        before=_BEFORE.integer(request),
        after=_AFTER.integer(request),
        session_timeout=request.state["settings"].app_session_timeout_seconds,
    )
    return record_response(page)


@endpoints.post(
    _MANY + "/end",
    "End the current chat session (owner, admin, moderator): the next message starts a new one",
    response=ChatSession,
    errors=(403, 409),
)
async def end_session(request: Request[AppState]) -> Response:
    me = caller(request)
    session = await sessions.update_session_end(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        session_timeout=request.state["settings"].app_session_timeout_seconds,
    )
    return record_response(session)
