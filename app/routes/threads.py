"""The caller's agent threads: list, metadata, state (LangGraph's or JSON), history, copy,
prune, delete.

Thread ids are whatever the agent chose (LangGraph lets users pick them): any path segment.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import json_object_param
from app.endpoints import (
    CURSOR,
    JSON_INPUT_REF,
    NO_NUL,
    Endpoints,
    Json,
    Param,
    PathParam,
    body_of,
    limit_param,
)
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import threads
from dal.records.threads import (
    CopiedThread,
    Pruned,
    SavedCheckpoint,
    Thread,
    ThreadCopy,
    ThreadHistory,
    ThreadPage,
    ThreadPatch,
    ThreadPrune,
    ThreadState,
    ThreadStateDraft,
)
from dal.settings import Settings
from dal.usecases import threads as thread_views

endpoints = Endpoints()
# LangGraph's ids: any path segment (the other ids are UUIDs).
THREAD_ID = PathParam(
    "thread_id",
    {
        "type": "string",
        "minLength": 1,
        "maxLength": thread_views.MAX_THREAD_ID_BYTES,
        "pattern": "^[^/\\u0000]+$",
        "description": f"any text of 1 to {thread_views.MAX_THREAD_ID_BYTES} bytes (UTF-8), "
        "percent-encoded",
    },
    errors=(422,),  # over the limit
)
CHECKPOINT_ID = PathParam(
    "checkpoint_id", {"type": "string", "minLength": 1, "pattern": "^[^/\\u0000]+$"}
)
_ONE = "/v1/threads/{thread_id:str}"
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_HISTORY_LIMIT = limit_param(20, thread_views.MAX_HISTORY)
_NS = Param(
    "checkpoint_ns",
    'checkpoint namespace (default "": the root graph; "node:task_id" for a subgraph)',
    {"type": "string", "default": "", "pattern": NO_NUL},
)


def _state_draft(schema: Json, settings: Settings) -> None:
    metadata = schema["properties"]["metadata"]
    metadata["propertyNames"] = {
        "pattern": NO_NUL,
        "not": {"enum": list(thread_views.RESERVED_METADATA)},
    }
    metadata["description"] = (
        f"the checkpoint's metadata; {', '.join(thread_views.RESERVED_METADATA)} "
        "are set by the server"
    )


def _thread_id(request: Request[AppState]) -> str:
    thread_id: str = request.path_params["thread_id"]
    return thread_id


def _checkpoint_ns(request: Request[AppState]) -> str:
    return request.query_params.get("checkpoint_ns", "")


@endpoints.get(
    "/v1/threads",
    "List the caller's agent threads, most recently updated first",
    response=ThreadPage,
    params=(_LIMIT, CURSOR),
)
async def list_threads(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await threads.list_threads(
        request.state["pool"],
        user_id=me.id,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)


@endpoints.get(_ONE, "Get a thread", response=Thread, path_params=(THREAD_ID,))
async def get_thread(request: Request[AppState]) -> Response:
    me = caller(request)
    thread = await threads.get_thread(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request)
    )
    return record_response(thread)


@endpoints.patch(
    _ONE,
    "Replace a thread's metadata (its retention object overrides the retention policies)",
    body=ThreadPatch,
    response=Thread,
    path_params=(THREAD_ID,),
)
async def update_thread(request: Request[AppState]) -> Response:
    me = caller(request)
    patch = await body_of(request, ThreadPatch)
    thread = await threads.update_thread_of_user(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request), metadata=patch.metadata
    )
    return record_response(thread)


@endpoints.get(
    _ONE + "/state",
    "The thread's newest checkpoint, values and pending writes as JSON",
    response=ThreadState,
    params=(_NS,),
    path_params=(THREAD_ID,),
)
@endpoints.get(
    _ONE + "/checkpoints/{checkpoint_id:str}",
    "One checkpoint of the thread as JSON",
    response=ThreadState,
    params=(_NS,),
    path_params=(THREAD_ID, CHECKPOINT_ID),
)
async def get_state(request: Request[AppState]) -> Response:
    """The newest checkpoint (``/state``), or the one the path names (``/checkpoints/{id}``)."""
    me = caller(request)
    state = await thread_views.get_thread_state(
        request.state["pool"],
        user_id=me.id,
        thread_id=_thread_id(request),
        checkpoint_ns=_checkpoint_ns(request),
        checkpoint_id=request.path_params.get("checkpoint_id"),
    )
    return record_response(state)


@endpoints.get(
    _ONE + "/history",
    "The thread's checkpoints, newest first, as JSON",
    response=ThreadHistory,
    params=(
        _HISTORY_LIMIT,
        Param(
            "before",
            "only checkpoints older than this checkpoint id",
            {"type": "string", "pattern": NO_NUL},
        ),
        Param(
            "metadata",
            'only checkpoints whose metadata contains this JSON object, e.g. {"step": 2}',
            {
                "type": "object",
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": {"$ref": JSON_INPUT_REF},
            },
            json=True,
        ),
        _NS,
    ),
    path_params=(THREAD_ID,),
)
async def get_history(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _HISTORY_LIMIT.integer(request)
    assert limit is not None
    history = await thread_views.list_thread_history(
        request.state["pool"],
        user_id=me.id,
        thread_id=_thread_id(request),
        checkpoint_ns=_checkpoint_ns(request),
        limit=limit,
        before=request.query_params.get("before") or None,
        metadata_filter=json_object_param(request, "metadata"),
    )
    return record_response(history)


@endpoints.put(
    _ONE + "/state",
    "Save JSON state as the thread's new newest checkpoint (the thread is created if new)",
    body=ThreadStateDraft,
    body_schema=_state_draft,
    response=SavedCheckpoint,
    status=201,
    path_params=(THREAD_ID,),
    errors=(409,),
)
async def put_state(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, ThreadStateDraft)
    saved = await thread_views.put_thread_state(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request), draft=draft
    )
    return record_response(saved, 201)


@endpoints.post(
    _ONE + "/copy",
    "Copy the thread's checkpoints (all, or the newest of each namespace) to a new thread",
    body=ThreadCopy,
    response=CopiedThread,
    status=201,
    path_params=(THREAD_ID,),
    errors=(409,),
)
async def copy_thread(request: Request[AppState]) -> Response:
    me = caller(request)
    body = await body_of(request, ThreadCopy)
    copied = await thread_views.copy_thread(
        request.state["pool"],
        user_id=me.id,
        thread_id=_thread_id(request),
        target_thread_id=body.target_thread_id,
        latest_only=body.latest_only,
    )
    return record_response(copied, 201)


@endpoints.post(
    _ONE + "/prune",
    "Delete the thread's checkpoints: all, or all but the newest of each namespace",
    body=ThreadPrune,
    response=Pruned,
    path_params=(THREAD_ID,),
    errors=(409,),
)
async def prune_thread(request: Request[AppState]) -> Response:
    me = caller(request)
    body = await body_of(request, ThreadPrune)
    pruned = await thread_views.prune_thread(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request), strategy=body.strategy
    )
    return record_response(pruned)


@endpoints.delete(
    _ONE, "Delete a thread and all its checkpoints", status=204, path_params=(THREAD_ID,)
)
async def delete_thread(request: Request[AppState]) -> Response:
    me = caller(request)
    await threads.delete_thread_of_user(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request)
    )
    return no_content()
