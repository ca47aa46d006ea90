"""Branches of a conversation (README "Branches"): the siblings of a message, making one
active, and reading any branch by its leaf. GET .../messages reads the active branch; an
append with ``parent_id`` starts a new one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import INT8_MAX
from app.endpoints import Endpoints, Param, body_of, limit_param
from app.responses import record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import branches
from dal.records.branches import Activation, ActiveBranch, Siblings
from dal.records.messages import MessagePage
from dal.usecases import branches as branching

endpoints = Endpoints()
_CONVERSATION = "/v1/conversations/{conversation_id:uuid}"
_MESSAGE = _CONVERSATION + "/messages/{message_id:uuid}"
_SEQ = {"type": "integer", "minimum": 0, "maximum": INT8_MAX}
_LIMIT = limit_param(50, MAX_PAGE_SIZE)
_AFTER = Param("after", "the siblings after this seq (the last of the page before)", _SEQ)
_BEFORE = Param(
    "before",
    "the page just above this seq: the first seq of the page before (a message of this branch)",
    _SEQ,
)


@endpoints.get(
    _MESSAGE + "/siblings",
    "The siblings of a message (its versions: edits, regenerations), oldest first, and which "
    "one is on the active branch",
    response=Siblings,
    params=(_LIMIT, _AFTER),
)
async def list_message_siblings(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    siblings = await branches.list_message_siblings(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        limit=limit,
        after=_AFTER.integer(request),
    )
    return record_response(siblings)


@endpoints.post(
    _MESSAGE + "/activate",
    "Make the branch through a message the active one: by default it goes on to the newest "
    "message below it (descend: false ends it at the message)",
    body=Activation,
    body_optional=True,
    response=ActiveBranch,
)
async def activate_message(request: Request[AppState]) -> Response:
    me = caller(request)
    activation = await body_of(request, Activation)
    switched = await branching.switch_branch(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
        descend=activation.descend,
    )
    return record_response(switched)


@endpoints.get(
    _CONVERSATION + "/branches/{message_id:uuid}/messages",
    "A page of the branch that ends at a message (its leaf: an old branch, or the active "
    "one), oldest "
    "first: the newest page unless before is given",
    response=MessagePage,
    params=(_LIMIT, _BEFORE),
)
async def list_branch_messages(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await branches.list_branch_messages(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        leaf_id=request.path_params["message_id"],
        limit=limit,
        before=_BEFORE.integer(request),
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)
