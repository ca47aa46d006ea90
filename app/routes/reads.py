"""Read state of the caller's conversations: mark read or delivered, unread counts and
messages, read receipts and delivery statuses (README "Read state and unread")."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import INT8_MAX
from app.endpoints import CURSOR, Endpoints, Param, body_of, limit_param
from app.responses import record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import InvalidInput
from dal.gateways import reads
from dal.records.messages import MessagePage
from dal.records.reads import (
    MessageDeliveryPage,
    MessageReceipts,
    ReadMark,
    ReadState,
    UnreadCounts,
    UnreadSummary,
)

endpoints = Endpoints()
_ONE = "/v1/conversations/{conversation_id:uuid}"
_SEQ = {"type": "integer", "minimum": 0, "maximum": INT8_MAX}
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_AFTER = Param("after", "the page just after this seq (0: from the start)", _SEQ)
_CONVERSATION_ID = Param(
    "conversation_id",
    f"a conversation to count; repeat it, up to {MAX_PAGE_SIZE} times",
    {"type": "string", "format": "uuid"},
)


async def _mark(request: Request[AppState], *, mark_read: bool) -> Response:
    me = caller(request)
    mark = await body_of(request, ReadMark)
    state = await reads.update_read_state(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        seq=mark.seq,
        mark_read=mark_read,
    )
    return record_response(state)


@endpoints.post(
    _ONE + "/read",
    "Mark the conversation read up to seq (all of it without seq); never moves backwards",
    body=ReadMark,
    body_optional=True,
    response=ReadState,
)
async def mark_read(request: Request[AppState]) -> Response:
    return await _mark(request, mark_read=True)


@endpoints.post(
    _ONE + "/delivered",
    "Mark the conversation delivered up to seq (all of it without seq); never moves backwards",
    body=ReadMark,
    body_optional=True,
    response=ReadState,
)
async def mark_delivered(request: Request[AppState]) -> Response:
    return await _mark(request, mark_read=False)


@endpoints.get(
    _ONE + "/read",
    "The caller's read and delivery positions and unread count (at most 100: capped)",
    response=ReadState,
)
async def get_read_state(request: Request[AppState]) -> Response:
    me = caller(request)
    state = await reads.get_read_state(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
    )
    return record_response(state)


@endpoints.get(
    _ONE + "/unread",
    "The caller's unread messages, oldest first (keyset on seq: after)",
    response=MessagePage,
    params=(_LIMIT, _AFTER),
)
async def list_unread_messages(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await reads.list_unread_messages(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        after=_AFTER.integer(request) or 0,
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)


@endpoints.get(
    "/v1/me/unread",
    "The caller's unread total and the conversations with unread messages (each count at "
    "most 100: capped), by conversation id",
    response=UnreadSummary,
    params=(_LIMIT, CURSOR),
)
async def list_unread_counts(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    summary = await reads.list_unread_counts(
        request.state["pool"],
        user_id=me.id,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(summary)


@endpoints.get(
    "/v1/me/unread/counts",
    "The caller's unread count (at most 100: capped) in each conversation asked for, e.g. "
    "a page of the conversation list; conversations the caller is not a member of are left out",
    response=UnreadCounts,
    params=(_CONVERSATION_ID,),
)
async def list_unread_counts_of(request: Request[AppState]) -> Response:
    me = caller(request)
    try:
        ids = [UUID(value) for value in request.query_params.getlist("conversation_id")]
    except ValueError as exc:
        raise InvalidInput("conversation_id: not a UUID") from exc
    counts = await reads.list_unread_counts_of(
        request.state["pool"], user_id=me.id, conversation_ids=ids
    )
    return record_response(counts)


@endpoints.get(
    _ONE + "/messages/{message_id:uuid}/receipts",
    "Read receipts of a message: who of its recipients has read it and has it delivered, "
    "and its delivery status",
    response=MessageReceipts,
    params=(_LIMIT, CURSOR),
)
async def list_message_receipts(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    receipts = await reads.list_message_receipts(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(receipts)


@endpoints.get(
    _ONE + "/deliveries",
    "The delivery status (sent, delivered, read) of a page of messages, by seq",
    response=MessageDeliveryPage,
    params=(_LIMIT, _AFTER),
)
async def list_message_deliveries(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await reads.list_message_deliveries(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        after=_AFTER.integer(request) or 0,
    )
    return record_response(page)
