"""Tasks: create (201), get, list (newest or highest priority first, by status, kind,
conversation; keyset) and
cancel (409 once finished) — README "Tasks". Workers use the queue gateways from Python."""

from __future__ import annotations

import re
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.endpoints import CURSOR, Endpoints, Param, body_of, limit_param
from app.responses import record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import InvalidInput
from dal.gateways import tasks
from dal.records.tasks import (
    TASK_ORDERS,
    TASK_STATUSES,
    Task,
    TaskDraft,
    TaskOrder,
    TaskPage,
    TaskStatus,
)

endpoints = Endpoints()
_MANY = "/v1/tasks"
_ONE = _MANY + "/{task_id:uuid}"
_STATUSES: dict[str, TaskStatus] = {status: status for status in TASK_STATUSES}
_ORDERS: dict[str, TaskOrder] = {order: order for order in TASK_ORDERS}
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_STATUS = Param(
    "status",
    "only tasks of this status; absent or empty: every status",
    {"type": "string", "enum": ["", *_STATUSES]},
)
_KIND = Param(
    "kind",
    "only tasks of this kind; absent or empty: every kind",
    {"type": "string", "maxLength": 200},
)
_CONVERSATION = Param(
    "conversation_id",
    "only tasks linked to this conversation",
    {"type": "string", "format": "uuid"},
)
_ORDER = Param(
    "order",
    "newest: newest first; priority: highest priority first, then newest (a cursor keeps "
    "its order); absent or empty: newest",
    {"type": "string", "enum": ["", *_ORDERS]},
)


@endpoints.post(
    _MANY,
    "Create a task (pending) for a worker to run; 404 if it names a conversation the caller "
    "may not read",
    body=TaskDraft,
    response=Task,
    status=201,
    errors=(404,),
)
async def create_task(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, TaskDraft)
    created = await tasks.insert_task(request.state["pool"], user_id=me.id, draft=draft)
    return record_response(created, 201)


@endpoints.get(
    _MANY,
    "A page of the caller's tasks, newest first or highest priority first",
    response=TaskPage,
    params=(_LIMIT, CURSOR, _STATUS, _KIND, _CONVERSATION, _ORDER),
)
async def list_tasks(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    given = request.query_params.get("status") or None
    status = None if given is None else _STATUSES.get(given)
    if given is not None and status is None:
        raise InvalidInput(f"status must be one of {', '.join(TASK_STATUSES)}")
    kind = request.query_params.get("kind") or None
    if kind is not None and len(kind) > 200:
        raise InvalidInput("kind: at most 200 characters")
    conversation = request.query_params.get("conversation_id")  # empty: not a UUID either
    if conversation is not None and not _UUID.fullmatch(conversation):
        raise InvalidInput("conversation_id must be a UUID")
    given = request.query_params.get("order") or "newest"
    order = _ORDERS.get(given)
    if order is None:
        raise InvalidInput(f"order must be one of {', '.join(TASK_ORDERS)}")
    page = await tasks.list_tasks(
        request.state["pool"],
        user_id=me.id,
        status=status,
        kind=kind,
        conversation_id=None if conversation is None else UUID(conversation),
        order=order,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)


@endpoints.get(_ONE, "The caller's task", response=Task)
async def get_task(request: Request[AppState]) -> Response:
    me = caller(request)
    found = await tasks.get_task(
        request.state["pool"], user_id=me.id, task_id=request.path_params["task_id"]
    )
    return record_response(found)


@endpoints.post(
    _ONE + "/cancel",
    "Cancel the caller's pending or running task (409 once it has finished)",
    response=Task,
    errors=(409,),
)
async def cancel_task(request: Request[AppState]) -> Response:
    me = caller(request)
    cancelled = await tasks.cancel_task(
        request.state["pool"], user_id=me.id, task_id=request.path_params["task_id"]
    )
    return record_response(cancelled)
