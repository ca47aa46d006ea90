"""The caller's agent threads: list, state (LangGraph's or JSON), history, copy, prune, delete.

Thread ids are whatever the agent chose (LangGraph lets users pick them): any path segment.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import current_user
from app.body import int_param, json_object_param, read_json
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import threads
from dal.records.threads import ThreadCopy, ThreadPrune, ThreadStateDraft


def _thread_id(request: Request[AppState]) -> str:
    thread_id: str = request.path_params["thread_id"]
    return thread_id


def _checkpoint_ns(request: Request[AppState]) -> str:
    return request.query_params.get("checkpoint_ns", "")


async def list_threads(request: Request[AppState]) -> Response:
    me = await current_user(request)
    limit = int_param(request, "limit", default=50, minimum=1, maximum=MAX_PAGE_SIZE)
    assert limit is not None
    page = await threads.list_threads(
        request.state["pool"],
        user_id=me.id,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)


async def get_thread(request: Request[AppState]) -> Response:
    me = await current_user(request)
    thread = await threads.get_thread(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request)
    )
    return record_response(thread)


async def get_state(request: Request[AppState]) -> Response:
    """The newest checkpoint (``/state``), or the one the path names (``/checkpoints/{id}``)."""
    me = await current_user(request)
    state = await threads.get_thread_state(
        request.state["pool"],
        user_id=me.id,
        thread_id=_thread_id(request),
        checkpoint_ns=_checkpoint_ns(request),
        checkpoint_id=request.path_params.get("checkpoint_id"),
    )
    return record_response(state)


async def get_history(request: Request[AppState]) -> Response:
    me = await current_user(request)
    limit = int_param(request, "limit", default=20, minimum=1, maximum=threads.MAX_HISTORY)
    assert limit is not None
    history = await threads.list_thread_history(
        request.state["pool"],
        user_id=me.id,
        thread_id=_thread_id(request),
        checkpoint_ns=_checkpoint_ns(request),
        limit=limit,
        before=request.query_params.get("before") or None,
        metadata_filter=json_object_param(request, "metadata"),
    )
    return record_response(history)


async def put_state(request: Request[AppState]) -> Response:
    me = await current_user(request)
    draft = await read_json(request, ThreadStateDraft)
    saved = await threads.put_thread_state(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request), draft=draft
    )
    return record_response(saved, 201)


async def copy_thread(request: Request[AppState]) -> Response:
    me = await current_user(request)
    body = await read_json(request, ThreadCopy)
    copied = await threads.copy_thread(
        request.state["pool"],
        user_id=me.id,
        thread_id=_thread_id(request),
        target_thread_id=body.target_thread_id,
        latest_only=body.latest_only,
    )
    return record_response(copied, 201)


async def prune_thread(request: Request[AppState]) -> Response:
    me = await current_user(request)
    body = await read_json(request, ThreadPrune)
    pruned = await threads.prune_thread(
        request.state["pool"], user_id=me.id, thread_id=_thread_id(request), strategy=body.strategy
    )
    return record_response(pruned)


async def delete_thread(request: Request[AppState]) -> Response:
    me = await current_user(request)
    await threads.delete_thread(request.state["pool"], user_id=me.id, thread_id=_thread_id(request))
    return no_content()


_ONE = "/v1/threads/{thread_id:str}"
routes = [
    Route("/v1/threads", list_threads, methods=["GET"]),
    Route(_ONE, get_thread, methods=["GET"]),
    Route(_ONE, delete_thread, methods=["DELETE"]),
    Route(_ONE + "/state", get_state, methods=["GET"]),
    Route(_ONE + "/state", put_state, methods=["PUT"]),
    Route(_ONE + "/history", get_history, methods=["GET"]),
    Route(_ONE + "/checkpoints/{checkpoint_id:str}", get_state, methods=["GET"]),
    Route(_ONE + "/copy", copy_thread, methods=["POST"]),
    Route(_ONE + "/prune", prune_thread, methods=["POST"]),
]
