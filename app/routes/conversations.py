"""The caller's conversations: create, list (keyset), get, patch (If-Match), delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import json_object_param
from app.endpoints import (
    CURSOR,
    JSON_INPUT_REF,
    LOCATION,
    NO_NUL,
    Answer,
    Endpoints,
    Header,
    Param,
    body_of,
    limit_param,
)
from app.errors import HttpError
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import InvalidInput
from dal.gateways import conversations
from dal.records.conversations import (
    Conversation,
    ConversationDraft,
    ConversationPage,
    ConversationPatch,
)
from dal.records.search import MAX_QUERY_CHARS

endpoints = Endpoints()
_MANY = "/v1/conversations"
_ONE = _MANY + "/{conversation_id:uuid}"
ETAG = Header(
    "ETag",
    'The conversation\'s version, e.g. "3": send it back in If-Match',
    {"type": "string", "pattern": '^"[0-9]+"$'},
)
# `"3"`, `3`, `W/"3"` (a conversation's version, at most 9 digits) or `*` (any version).
IF_MATCH_PATTERN = r'^[ \t]*(\*|(W/)?"*[0-9]{1,9}"*)[ \t]*$'
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
IF_MATCH = Param(
    "If-Match",
    'the version the change applies to, as the ETag gives it (e.g. "3"); 412 if the '
    "conversation is at another version, 400 if the header is not a version",
    {"type": "string", "pattern": IF_MATCH_PATTERN},
    "header",
)


# The filters of the list (README "Search").
_Q = Param(
    "q",
    "only conversations whose title or a message matches these words (web-search syntax, as "
    "GET /v1/search/messages)",
    {"type": "string", "maxLength": MAX_QUERY_CHARS, "pattern": NO_NUL},
)
_TAG = Param(
    "tag",
    "only conversations with this tag; repeat it for several (any of them, or all of them with "
    "tags_mode=all)",
    {"type": "string", "maxLength": 100, "pattern": NO_NUL},
)
_TAGS_MODE = Param(
    "tags_mode",
    "any (default): a conversation with any of the tags; all: with all of them",
    {"type": "string", "enum": ["", "any", "all"], "default": "any"},
)
_METADATA = Param(
    "metadata",
    'only conversations whose metadata contains this JSON object, e.g. {"agent": "planner"}',
    {
        "type": "object",
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": {"$ref": JSON_INPUT_REF},
    },
    json=True,
)
MAX_TAGS = 100


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


@endpoints.post(
    _MANY,
    "Create a conversation (201); the same request again with its id returns it (200)",
    body=ConversationDraft,
    body_optional=True,
    response=Conversation,
    status=201,
    headers=(LOCATION, ETAG),
    answers=(
        Answer(
            200,
            "Already created (a retry of this id): the conversation as it is now",
            Conversation,
            (LOCATION, ETAG),
        ),
    ),
    errors=(409,),  # the id with other content (idempotency_mismatch), a thread taken
)
async def create_conversation(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, ConversationDraft)
    made = await conversations.create_conversation(
        request.state["pool"], user_id=me.id, draft=draft
    )
    conversation = made.conversation
    headers = {"Location": f"/v1/conversations/{conversation.id}", **_etag(conversation)}
    # 201 when created now; 200 when this id was already created by the same request (a
    # retry): the conversation as it is now. Any other taken id: 409 idempotency_mismatch.
    return record_response(conversation, 201 if made.created else 200, headers)


@endpoints.get(
    _MANY,
    "List conversations, most recent activity first; filtered by text, tags, metadata",
    response=ConversationPage,
    params=(_LIMIT, CURSOR, _Q, _TAG, _TAGS_MODE, _METADATA),
)
async def list_conversations(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    tags = [tag for tag in request.query_params.getlist("tag") if tag]
    if len(tags) > MAX_TAGS or any(len(tag) > 100 for tag in tags):
        raise InvalidInput(f"tag: at most {MAX_TAGS} tags, each at most 100 characters")
    mode = request.query_params.get("tags_mode") or "any"
    if mode not in ("any", "all"):
        raise InvalidInput('tags_mode must be "any" or "all"')
    q = request.query_params.get("q")
    page = await conversations.list_conversations(
        request.state["pool"],
        user_id=me.id,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
        q=q if q else None,
        tags=tags or None,
        tags_mode="all" if mode == "all" else "any",
        metadata=json_object_param(request, "metadata"),
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)


@endpoints.get(
    _ONE, "Get a conversation (ETag: its version)", response=Conversation, headers=(ETAG,)
)
async def get_conversation(request: Request[AppState]) -> Response:
    me = caller(request)
    conversation = await conversations.get_conversation(
        request.state["pool"], user_id=me.id, conversation_id=request.path_params["conversation_id"]
    )
    return record_response(conversation, headers=_etag(conversation))


@endpoints.patch(
    _ONE,
    "Update a conversation (If-Match: version -> 412 when stale)",
    body=ConversationPatch,
    response=Conversation,
    params=(IF_MATCH,),
    headers=(ETAG,),
    errors=(409, 412),  # 409: the thread serves another conversation
)
async def update_conversation(request: Request[AppState]) -> Response:
    me = caller(request)
    expected = if_match_version(request)
    patch = await body_of(request, ConversationPatch)
    conversation = await conversations.update_conversation(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        patch=patch,
        expected_version=expected,
    )
    return record_response(conversation, headers=_etag(conversation))


@endpoints.delete(_ONE, "Delete a conversation and its messages", status=204)
async def delete_conversation(request: Request[AppState]) -> Response:
    me = caller(request)
    await conversations.delete_conversation(
        request.state["pool"], user_id=me.id, conversation_id=request.path_params["conversation_id"]
    )
    return no_content()
