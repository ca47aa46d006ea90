"""Event logs: page and append to a task's log and a conversation's (README "Event logs");
following them live is app/routes/event_streams.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import INT8_MAX
from app.endpoints import Endpoints, Param, body_of, limit_param
from app.responses import record_response
from app.state import AppState
from dal.gateways import events
from dal.gateways.events import MAX_EVENTS_PER_PAGE
from dal.records.events import EventBatch, EventList, EventPage

endpoints = Endpoints()
_TASK = "/v1/tasks/{task_id:uuid}/events"
_CONVERSATION = "/v1/conversations/{conversation_id:uuid}/events"
_LIMIT = limit_param(100, MAX_EVENTS_PER_PAGE)
_AFTER = Param(
    "after",
    "the events after this seq (default 0: from the first); pass a page's last seq for the next",
    {"type": "integer", "minimum": 0, "maximum": INT8_MAX, "default": 0},
)


def _page_args(request: Request[AppState]) -> tuple[int, int]:
    after, limit = _AFTER.integer(request), _LIMIT.integer(request)
    assert after is not None and limit is not None
    return after, limit


@endpoints.get(
    _TASK,
    "A page of the caller's task's event log, in seq order after ?after=",
    response=EventPage,
    params=(_AFTER, _LIMIT),
)
async def list_task_events(request: Request[AppState]) -> Response:
    me = caller(request)
    after, limit = _page_args(request)
    page = await events.list_task_events(
        request.state["pool"],
        user_id=me.id,
        task_id=request.path_params["task_id"],
        after=after,
        limit=limit,
    )
    return record_response(page)


@endpoints.post(
    _TASK,
    "Append events, in order, to the caller's task's log (all or none)",
    body=EventBatch,
    response=EventList,
    status=201,
)
async def append_task_events(request: Request[AppState]) -> Response:
    me = caller(request)
    batch = await body_of(request, EventBatch)
    written = await events.append_task_events(
        request.state["pool"],
        user_id=me.id,
        task_id=request.path_params["task_id"],
        events=batch.events,
        max_bytes=request.state["settings"].app_max_event_bytes,
    )
    return record_response(EventList(items=written), 201)


@endpoints.get(
    _CONVERSATION,
    "A page of a conversation's event log, in seq order after ?after=",
    response=EventPage,
    params=(_AFTER, _LIMIT),
)
async def list_conversation_events(request: Request[AppState]) -> Response:
    me = caller(request)
    after, limit = _page_args(request)
    page = await events.list_conversation_events(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        after=after,
        limit=limit,
    )
    return record_response(page)


@endpoints.post(
    _CONVERSATION,
    "Append events, in order, to a conversation's log (all or none; a role that may append)",
    body=EventBatch,
    response=EventList,
    status=201,
    errors=(403,),
)
async def append_conversation_events(request: Request[AppState]) -> Response:
    me = caller(request)
    batch = await body_of(request, EventBatch)
    written = await events.append_conversation_events(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        events=batch.events,
        max_bytes=request.state["settings"].app_max_event_bytes,
    )
    return record_response(EventList(items=written), 201)
