"""Messages of the caller's conversations: append (idempotent), page, get, edit/stream, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import current_user
from app.body import int_param, read_json
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import messages
from dal.records.messages import MessageDraft, MessagePatch


async def append_message(request: Request[AppState]) -> Response:
    me = await current_user(request)
    draft = await read_json(request, MessageDraft)
    conversation_id = request.path_params["conversation_id"]
    settings = request.state["settings"]
    appended = await messages.insert_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=conversation_id,
        draft=draft,
        max_bytes=settings.app_max_message_bytes,
        max_parts=settings.app_max_message_parts,
    )
    message = appended.message
    # 201 when stored now; 200 when this id was already stored by the same request (a retry):
    # the stored message as it is now. The id with other content is 409 idempotency_mismatch.
    return record_response(
        message,
        201 if appended.created else 200,
        {"Location": f"/v1/conversations/{conversation_id}/messages/{message.id}"},
    )


async def list_messages(request: Request[AppState]) -> Response:
    me = await current_user(request)
    limit = int_param(request, "limit", default=50, minimum=1, maximum=MAX_PAGE_SIZE)
    assert limit is not None
    page = await messages.list_messages(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        before=int_param(request, "before", default=None),
        after=int_param(request, "after", default=None),
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)


async def get_message(request: Request[AppState]) -> Response:
    me = await current_user(request)
    message = await messages.get_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return record_response(message)


async def update_message(request: Request[AppState]) -> Response:
    me = await current_user(request)
    patch = await read_json(request, MessagePatch)
    settings = request.state["settings"]
    message = await messages.update_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        patch=patch,
        max_bytes=settings.app_max_message_bytes,
        max_parts=settings.app_max_message_parts,
    )
    return record_response(message)


async def delete_message(request: Request[AppState]) -> Response:
    me = await current_user(request)
    await messages.delete_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return no_content()


_MANY = "/v1/conversations/{conversation_id:uuid}/messages"
_ONE = _MANY + "/{message_id:uuid}"
routes = [
    Route(_MANY, append_message, methods=["POST"]),
    Route(_MANY, list_messages, methods=["GET"]),
    Route(_ONE, get_message, methods=["GET"]),
    Route(_ONE, update_message, methods=["PATCH"]),
    Route(_ONE, delete_message, methods=["DELETE"]),
]
