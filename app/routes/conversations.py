"""The caller's conversations: create, list (keyset), get, patch (If-Match), delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import current_user
from app.body import int_param, read_json
from app.errors import HttpError
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import conversations
from dal.records.conversations import Conversation, ConversationDraft, ConversationPatch


def _etag(conversation: Conversation) -> dict[str, str]:
    return {"ETag": f'"{conversation.version}"'}


def if_match_version(request: Request[AppState]) -> int | None:
    """The version in ``If-Match`` (``"3"``, ``3`` or ``W/"3"``); None when absent or ``*``."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    # isdigit() alone takes "²", which int() refuses
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise HttpError(400, "bad_if_match", 'If-Match must be a conversation version, e.g. "3"')
    return int(value)


async def create_conversation(request: Request[AppState]) -> Response:
    me = await current_user(request)
    draft = await read_json(request, ConversationDraft, optional=True)
    made = await conversations.create_conversation(
        request.state["pool"], user_id=me.id, draft=draft
    )
    conversation = made.conversation
    headers = {"Location": f"/v1/conversations/{conversation.id}", **_etag(conversation)}
    # 201 when created now; 200 when this id was already created by the same request (a
    # retry): the conversation as it is now. Any other taken id: 409 idempotency_mismatch.
    return record_response(conversation, 201 if made.created else 200, headers)


async def list_conversations(request: Request[AppState]) -> Response:
    me = await current_user(request)
    limit = int_param(request, "limit", default=50, minimum=1, maximum=MAX_PAGE_SIZE)
    assert limit is not None
    page = await conversations.list_conversations(
        request.state["pool"],
        user_id=me.id,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)


async def get_conversation(request: Request[AppState]) -> Response:
    me = await current_user(request)
    conversation = await conversations.get_conversation(
        request.state["pool"], user_id=me.id, conversation_id=request.path_params["conversation_id"]
    )
    return record_response(conversation, headers=_etag(conversation))


async def update_conversation(request: Request[AppState]) -> Response:
    me = await current_user(request)
    expected = if_match_version(request)
    patch = await read_json(request, ConversationPatch)
    conversation = await conversations.update_conversation(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        patch=patch,
        expected_version=expected,
    )
    return record_response(conversation, headers=_etag(conversation))


async def delete_conversation(request: Request[AppState]) -> Response:
    me = await current_user(request)
    await conversations.delete_conversation(
        request.state["pool"], user_id=me.id, conversation_id=request.path_params["conversation_id"]
    )
    return no_content()


_ONE = "/v1/conversations/{conversation_id:uuid}"
routes = [
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    Route("/v1/conversations", list_conversations, methods=["GET"]),
    Route(_ONE, get_conversation, methods=["GET"]),
    Route(_ONE, update_conversation, methods=["PATCH"]),
    Route(_ONE, delete_conversation, methods=["DELETE"]),
]
