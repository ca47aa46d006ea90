"""Users (admin), the caller (``/v1/me``) and the caller's tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import current_user, require_admin
from app.body import read_json
from app.responses import no_content, record_response
from app.schemas import TokenCreated, UserCreated
from app.state import AppState
from dal.errors import InvalidInput
from dal.gateways import users
from dal.records.users import TokenDraft, UserDraft, UserPatch


def _check_expires_in(request: Request[AppState], field: str, expires_in: int | None) -> None:
    """Refuse an expiry beyond APP_MAX_TOKEN_EXPIRES_IN (the record bounds it at 100 years)."""
    limit = request.state["settings"].app_max_token_expires_in
    if expires_in is not None and expires_in > limit:
        raise InvalidInput(f"{field} may be at most {limit} seconds")


async def create_user(request: Request[AppState]) -> Response:
    await require_admin(request)
    draft = await read_json(request, UserDraft)
    _check_expires_in(request, "token_expires_in", draft.token_expires_in)
    created = await users.create_user(request.state["pool"], draft=draft)
    body = UserCreated(
        user=created.user,
        token=created.token.secret,
        token_id=created.token.token.id,
        token_expires_at=created.token.token.expires_at,
    )
    return record_response(body, 201, {"Location": f"/v1/users/{created.user.id}"})


async def get_user(request: Request[AppState]) -> Response:
    await require_admin(request)
    user = await users.get_user(request.state["pool"], user_id=request.path_params["user_id"])
    return record_response(user)


async def update_user(request: Request[AppState]) -> Response:
    await require_admin(request)
    patch = await read_json(request, UserPatch)
    user = await users.update_user(
        request.state["pool"], user_id=request.path_params["user_id"], patch=patch
    )
    return record_response(user)


async def deactivate_user(request: Request[AppState]) -> Response:
    await require_admin(request)
    user = await users.deactivate_user(
        request.state["pool"], user_id=request.path_params["user_id"]
    )
    return record_response(user)


async def get_me(request: Request[AppState]) -> Response:
    return record_response(await current_user(request))


async def update_me(request: Request[AppState]) -> Response:
    me = await current_user(request)
    patch = await read_json(request, UserPatch)
    return record_response(
        await users.update_user(request.state["pool"], user_id=me.id, patch=patch)
    )


async def create_token(request: Request[AppState]) -> Response:
    me = await current_user(request)
    draft = await read_json(request, TokenDraft, optional=True)
    _check_expires_in(request, "expires_in", draft.expires_in)
    issued = await users.issue_token(
        request.state["pool"],
        user_id=me.id,
        name=draft.name,
        expires_in=draft.expires_in,
        max_active=request.state["settings"].app_max_tokens_per_user,
    )
    body = TokenCreated(
        id=issued.token.id,
        name=issued.token.name,
        created_at=issued.token.created_at,
        expires_at=issued.token.expires_at,
        token=issued.secret,
    )
    return record_response(body, 201)


async def list_tokens(request: Request[AppState]) -> Response:
    """The caller's active tokens (not their secrets): what there is to revoke."""
    me = await current_user(request)
    limit = request.state["settings"].app_max_tokens_per_user
    return record_response(
        await users.list_tokens(request.state["pool"], user_id=me.id, limit=limit)
    )


async def revoke_token(request: Request[AppState]) -> Response:
    me = await current_user(request)
    await users.revoke_token(
        request.state["pool"], user_id=me.id, token_id=request.path_params["token_id"]
    )
    return no_content()


routes = [
    Route("/v1/users", create_user, methods=["POST"]),
    Route("/v1/users/{user_id:uuid}", get_user, methods=["GET"]),
    Route("/v1/users/{user_id:uuid}", update_user, methods=["PATCH"]),
    Route("/v1/users/{user_id:uuid}/deactivate", deactivate_user, methods=["POST"]),
    Route("/v1/me", get_me, methods=["GET"]),
    Route("/v1/me", update_me, methods=["PATCH"]),
    Route("/v1/tokens", create_token, methods=["POST"]),
    Route("/v1/tokens", list_tokens, methods=["GET"]),
    Route("/v1/tokens/{token_id:uuid}", revoke_token, methods=["DELETE"]),
]
