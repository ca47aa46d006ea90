"""Members of a shared conversation (README "Members and roles"): list, add, change a role,
remove, leave (DELETE one's own membership). A non-member gets 404; a member whose role may
not do it, 403."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.endpoints import CURSOR, LOCATION, Answer, Endpoints, body_of, limit_param
from app.responses import no_content, record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import members
from dal.records.members import Member, MemberDraft, MemberPage, MemberPatch

endpoints = Endpoints()
_MANY = "/v1/conversations/{conversation_id:uuid}/members"
_ONE = _MANY + "/{user_id:uuid}"
_LIMIT = limit_param(50, MAX_PAGE_SIZE)


def _location(member: Member) -> dict[str, str]:
    return {"Location": f"/v1/conversations/{member.conversation_id}/members/{member.user_id}"}


@endpoints.get(
    _MANY,
    "List the members, in the order they joined (any member)",
    response=MemberPage,
    params=(_LIMIT, CURSOR),
)
async def list_members(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await members.list_members(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)


@endpoints.post(
    _MANY,
    "Add a member (201), with a role below your own (add_member: admin and owner); already a "
    "member with that role: 200",
    body=MemberDraft,
    response=Member,
    status=201,
    headers=(LOCATION,),
    answers=(
        Answer(200, "Already a member with this role: the member, unchanged", Member, (LOCATION,)),
    ),
    # 409: a member with another role, or a direct conversation with its two members;
    # 429: APP_MAX_MEMBERS reached
    errors=(409, 429),
)
async def add_member(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, MemberDraft)
    added = await members.insert_member(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        draft=draft,
        max_members=request.state["settings"].app_max_members,
    )
    member = added.member
    return record_response(member, 201 if added.created else 200, _location(member))


@endpoints.patch(
    _ONE,
    "Change a member's role (change_role: admin and owner; both roles below your own); the "
    "owner giving owner hands ownership over and becomes an admin",
    body=MemberPatch,
    response=Member,
)
async def change_member_role(request: Request[AppState]) -> Response:
    me = caller(request)
    patch = await body_of(request, MemberPatch)
    member = await members.update_member_role(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        member_id=request.path_params["user_id"],
        patch=patch,
    )
    return record_response(member)


@endpoints.delete(
    _ONE,
    "Remove a member ranked below you (remove_member: moderator and up); your own id: leave "
    "(the owner hands ownership on; 409 if alone)",
    status=204,
    errors=(409,),
)
async def remove_member(request: Request[AppState]) -> Response:
    me = caller(request)
    await members.delete_member(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        member_id=request.path_params["user_id"],
    )
    return no_content()
