"""Messages of the caller's conversations: append (idempotent), page, get, edit/stream,
retract, delete (a tombstone), earlier versions."""

from __future__ import annotations

from typing import TypedDict

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import INT8_MAX
from app.endpoints import (
    JSON_INPUT_REF,
    LOCATION,
    NO_NUL,
    Answer,
    Endpoints,
    Json,
    Param,
    body_of,
    limit_param,
    walk,
)
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import messages
from dal.records.messages import (
    PART_FIELDS,
    TOOL_FIELDS,
    Message,
    MessageDraft,
    MessagePage,
    MessagePatch,
    MessageVersionPage,
)
from dal.settings import Settings
from dal.usecases import branches as branching

endpoints = Endpoints()


class _AppendLimits(TypedDict):
    """What an append is held to, from the settings (both append paths take the same)."""

    max_bytes: int
    max_parts: int
    session_timeout: float
    max_per_conversation: int
    max_per_user: int


_MANY = "/v1/conversations/{conversation_id:uuid}/messages"
_ONE = _MANY + "/{message_id:uuid}"
_SEQ = {"type": "integer", "minimum": 0, "maximum": INT8_MAX}
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_BEFORE = Param("before", "the page just before this seq (not with after)", _SEQ)
_AFTER = Param("after", "the page just after this seq (not with before)", _SEQ)
_FLAGGED_AFTER = Param("after", "the page just after this seq (0: from the first)", _SEQ)


def _part_schema() -> Json:
    """A message part as dal.records checks it: a non-empty string ``type`` and, for the types
    it knows, their required string fields (a ``data-*`` part needs ``data``)."""

    def needs(fields: tuple[str, ...]) -> Json:
        return {"required": list(fields), "properties": {f: {"type": "string"} for f in fields}}

    rules: list[Json] = [
        {"if": {"properties": {"type": {"const": kind}}}, "then": needs(fields)}
        for kind, fields in PART_FIELDS.items()
        if fields
    ]
    rules.append(
        {"if": {"properties": {"type": {"pattern": "^tool-[\\s\\S]"}}}, "then": needs(TOOL_FIELDS)}
    )
    rules.append(
        {
            "if": {"properties": {"type": {"pattern": "^data-[\\s\\S]"}}},
            "then": {"required": ["data"]},
        }
    )
    return {
        "type": "object",
        "description": "A UI message part (Vercel AI SDK): its type, then that type's fields; "
        "every key is kept as given",
        "required": ["type"],
        "properties": {"type": {"type": "string", "minLength": 1, "pattern": NO_NUL}},
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": {"$ref": JSON_INPUT_REF},
        "allOf": rules,
    }


def _parts(schema: Json, settings: Settings) -> None:
    """The parts of a draft or patch are UI message parts (their rules in _part_schema)."""
    for key in ("parts", "append_parts"):
        for node in walk(schema["properties"].get(key)):
            if node.get("type") == "array":
                node["items"] = _part_schema()


@endpoints.post(
    _MANY,
    "Append a message (201); a retried id returns the stored message (200)",
    body=MessageDraft,
    body_schema=_parts,
    response=Message,
    status=201,
    headers=(LOCATION,),
    answers=(
        Answer(
            200, "Already stored (a retry of this id): the stored message", Message, (LOCATION,)
        ),
    ),
    errors=(409, 429),
)
async def append_message(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, MessageDraft)
    conversation_id = request.path_params["conversation_id"]
    settings = request.state["settings"]
    limits: _AppendLimits = {
        "max_bytes": settings.app_max_message_bytes,
        "max_parts": settings.app_max_message_parts,
        "session_timeout": settings.app_session_timeout_seconds,
        "max_per_conversation": settings.app_max_messages_per_conversation,
        "max_per_user": settings.app_max_messages_per_user,
    }
    if draft.parent_id is not None:
        # After another message than the active leaf: a new branch there (README "Branches").
        appended = await branching.append_on_branch(
            request.state["pool"],
            user_id=me.id,
            conversation_id=conversation_id,
            draft=draft,
            parent_id=draft.parent_id,
            **limits,
        )
    else:
        appended = await messages.insert_message(
            request.state["pool"],
            user_id=me.id,
            conversation_id=conversation_id,
            draft=draft,
            **limits,
        )
    message = appended.message
    # 201 when stored now; 200 when this id was already stored by the same request (a retry):
    # the stored message as it is now. The id with other content is 409 idempotency_mismatch.
    return record_response(
        message,
        201 if appended.created else 200,
        {"Location": f"/v1/conversations/{conversation_id}/messages/{message.id}"},
    )


@endpoints.get(
    _MANY,
    "A page of messages, oldest first (the newest page unless before or after is given)",
    response=MessagePage,
    params=(_LIMIT, _BEFORE, _AFTER),
)
async def list_messages(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await messages.list_messages(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        before=_BEFORE.integer(request),
        after=_AFTER.integer(request),
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)


@endpoints.get(
    _MANY + "/flagged",
    "A page of the messages stored with a tool-call integrity flag, oldest first",
    response=MessagePage,
    params=(_LIMIT, _FLAGGED_AFTER),
)
async def list_messages_flagged(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await messages.list_messages_flagged(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        after=_FLAGGED_AFTER.integer(request) or 0,
    )
    return record_response(page)


@endpoints.get(_ONE, "Get a message", response=Message)
async def get_message(request: Request[AppState]) -> Response:
    me = caller(request)
    message = await messages.get_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return record_response(message)


@endpoints.patch(
    _ONE,
    "Change one's own message: stream to it (append parts, finalize), replace its metadata, "
    "or edit its parts within APP_EDIT_WINDOW_SECONDS (the replaced version is kept)",
    body=MessagePatch,
    body_schema=_parts,
    response=Message,
    errors=(409,),
)
async def update_message(request: Request[AppState]) -> Response:
    me = caller(request)
    patch = await body_of(request, MessagePatch)
    settings = request.state["settings"]
    message = await messages.update_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        patch=patch,
        max_bytes=settings.app_max_message_bytes,
        max_parts=settings.app_max_message_parts,
        edit_window=settings.app_edit_window_seconds,
    )
    return record_response(message)


@endpoints.delete(
    _ONE,
    "Delete a message (owner, admin, moderator): its content goes, a tombstone keeps its place",
    status=204,
)
async def delete_message(request: Request[AppState]) -> Response:
    me = caller(request)
    await messages.delete_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return no_content()


@endpoints.post(
    _ONE + "/retract",
    "Take back one's own message within APP_EDIT_WINDOW_SECONDS: its content goes, a "
    "tombstone keeps its place (a retracted message comes back as it is)",
    response=Message,
    errors=(409,),
)
async def retract_message(request: Request[AppState]) -> Response:
    me = caller(request)
    message = await messages.delete_own_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        edit_window=request.state["settings"].app_edit_window_seconds,
    )
    return record_response(message)


_VERSIONS_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_AFTER_VERSION = Param(
    "after",
    "the versions after this version number",
    {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
)


@endpoints.get(
    _ONE + "/versions",
    "Earlier versions of an edited message, oldest first (the message itself is the newest)",
    response=MessageVersionPage,
    params=(_VERSIONS_LIMIT, _AFTER_VERSION),
)
async def list_message_versions(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _VERSIONS_LIMIT.integer(request)
    after = _AFTER_VERSION.integer(request)
    assert limit is not None and after is not None
    page = await messages.list_message_versions(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        limit=limit,
        after=after,
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)
