"""Workspace snapshots: save, list (newest first; searched, of a conversation or of a task),
get (restore), change, delete (README "Workspace snapshots")."""

from __future__ import annotations

import re
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.endpoints import CURSOR, LOCATION, NO_NUL, Endpoints, Param, body_of, limit_param
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import InvalidInput
from dal.gateways import snapshots
from dal.gateways.snapshots import MAX_QUERY_CHARS
from dal.records.snapshots import Snapshot, SnapshotDraft, SnapshotPage, SnapshotPatch

endpoints = Endpoints()
_MANY = "/v1/snapshots"
_ONE = _MANY + "/{snapshot_id:uuid}"
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_Q = Param(
    "q",
    "only snapshots whose name or panels' queries contain this text (any case); absent or "
    "empty: all",
    {"type": "string", "maxLength": MAX_QUERY_CHARS, "pattern": NO_NUL},
)
_CONVERSATION = Param(
    "conversation_id",
    "only snapshots linked to this conversation",
    {"type": "string", "format": "uuid"},
)
_TASK = Param(
    "task_id",
    "only snapshots linked to this task",
    {"type": "string", "format": "uuid"},
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@endpoints.post(
    _MANY,
    "Save a snapshot of the caller's workspace: named panels, each with its query (201); 404 "
    "if it names a conversation the caller may not read or a task not theirs",
    body=SnapshotDraft,
    response=Snapshot,
    status=201,
    headers=(LOCATION,),
    errors=(404,),
)
async def create_snapshot(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, SnapshotDraft)
    saved = await snapshots.insert_snapshot(
        request.state["pool"],
        user_id=me.id,
        draft=draft,
        max_bytes=request.state["settings"].app_max_snapshot_bytes,
    )
    return record_response(saved, 201, {"Location": f"{_MANY}/{saved.id}"})


@endpoints.get(
    _MANY,
    "List the caller's snapshots, newest first, without their panels; searched by name and "
    "query text",
    response=SnapshotPage,
    params=(_LIMIT, CURSOR, _Q, _CONVERSATION, _TASK),
)
async def list_snapshots(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await snapshots.list_snapshots(
        request.state["pool"],
        user_id=me.id,
        q=request.query_params.get("q") or None,
        conversation_id=_uuid_param(request, "conversation_id"),
        task_id=_uuid_param(request, "task_id"),
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)


def _uuid_param(request: Request[AppState], name: str) -> UUID | None:
    given = request.query_params.get(name)  # empty: not a UUID either
    if given is None:
        return None
    if not _UUID.fullmatch(given):
        raise InvalidInput(f"{name} must be a UUID")
    return UUID(given)


@endpoints.get(_ONE, "Get a snapshot, panels and all (to restore it)", response=Snapshot)
async def get_snapshot(request: Request[AppState]) -> Response:
    me = caller(request)
    found = await snapshots.get_snapshot(
        request.state["pool"], user_id=me.id, snapshot_id=request.path_params["snapshot_id"]
    )
    return record_response(found)


@endpoints.patch(
    _ONE,
    "Rename a snapshot, replace its panels, or link or unlink its conversation or its task",
    body=SnapshotPatch,
    response=Snapshot,
)
async def update_snapshot(request: Request[AppState]) -> Response:
    me = caller(request)
    patch = await body_of(request, SnapshotPatch)
    changed = await snapshots.update_snapshot(
        request.state["pool"],
        user_id=me.id,
        snapshot_id=request.path_params["snapshot_id"],
        patch=patch,
        max_bytes=request.state["settings"].app_max_snapshot_bytes,
    )
    return record_response(changed)


@endpoints.delete(_ONE, "Delete a snapshot", status=204)
async def delete_snapshot(request: Request[AppState]) -> Response:
    me = caller(request)
    await snapshots.delete_snapshot(
        request.state["pool"], user_id=me.id, snapshot_id=request.path_params["snapshot_id"]
    )
    return no_content()
