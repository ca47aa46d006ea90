"""Users (admin), the caller (``/v1/me``) and the caller's tokens."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.endpoints import LOCATION, Endpoints, Json, body_of, walk
from app.responses import no_content, record_response
from app.schemas import TokenCreated, UserCreated
from app.state import AppState
from dal.errors import InvalidInput
from dal.gateways import users
from dal.records.erasure import ErasureReport
from dal.records.users import TokenDraft, TokenList, User, UserDraft, UserPatch
from dal.settings import Settings
from dal.usecases import erasure

endpoints = Endpoints()
_USER = "/v1/users/{user_id:uuid}"


def _check_expires_in(request: Request[AppState], field: str, expires_in: int | None) -> None:
    """Refuse an expiry beyond APP_MAX_TOKEN_EXPIRES_IN (the record bounds it at 100 years)."""
    limit = request.state["settings"].app_max_token_expires_in
    if expires_in is not None and expires_in > limit:
        raise InvalidInput(f"{field} may be at most {limit} seconds")


def _max_expires_in(field: str) -> Callable[[Json, Settings], None]:
    """The record allows longer token lifetimes than APP_MAX_TOKEN_EXPIRES_IN."""

    def refine(schema: Json, settings: Settings) -> None:
        limit = getattr(settings, "app_max_token_expires_in", None)
        for node in walk(schema["properties"].get(field)):
            if node.get("type") == "integer" and limit is not None:
                node["maximum"] = min(node.get("maximum", limit), limit)

    return refine


def username_schema(schema: Json, settings: Settings) -> None:
    """The rule of ``username`` (dal.records.users.Username), which a validator checks."""
    username = schema["properties"]["username"]
    # Stored trimmed and lower-cased.
    username["pattern"] = r"^\s*[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\s*$"
    username["description"] = (
        "1-64 letters, digits, '_', '.', '-', starting with a letter or digit; "
        "case-insensitive (stored lower-cased)"
    )


def _user_draft(schema: Json, settings: Settings) -> None:
    username_schema(schema, settings)
    _max_expires_in("token_expires_in")(schema, settings)


@endpoints.post(
    "/v1/users",
    "Create a user and their first token",
    auth="admin",
    body=UserDraft,
    body_schema=_user_draft,
    response=UserCreated,
    status=201,
    headers=(LOCATION,),
    errors=(409,),
)
async def create_user(request: Request[AppState]) -> Response:
    draft = await body_of(request, UserDraft)
    _check_expires_in(request, "token_expires_in", draft.token_expires_in)
    created = await users.create_user(request.state["pool"], draft=draft)
    body = UserCreated(
        user=created.user,
        token=created.token.secret,
        token_id=created.token.token.id,
        token_expires_at=created.token.token.expires_at,
    )
    return record_response(body, 201, {"Location": f"/v1/users/{created.user.id}"})


@endpoints.get(_USER, "Get a user", auth="admin", response=User)
async def get_user(request: Request[AppState]) -> Response:
    user = await users.get_user(request.state["pool"], user_id=request.path_params["user_id"])
    return record_response(user)


@endpoints.patch(_USER, "Update a user's profile", auth="admin", body=UserPatch, response=User)
async def update_user(request: Request[AppState]) -> Response:
    patch = await body_of(request, UserPatch)
    user_id = request.path_params["user_id"]
    async with request.state["tokens"].changing(user_id):
        user = await users.update_user(request.state["pool"], user_id=user_id, patch=patch)
    return record_response(user)


@endpoints.post(
    _USER + "/deactivate", "Deactivate a user (tokens stop working)", auth="admin", response=User
)
async def deactivate_user(request: Request[AppState]) -> Response:
    user_id = request.path_params["user_id"]
    async with request.state["tokens"].changing(user_id):
        user = await users.deactivate_user(request.state["pool"], user_id=user_id)
    return record_response(user)


@endpoints.delete(
    _USER,
    "Erase a user: every row they own or wrote, in batches; their words in others' "
    'conversations as tombstones (README "Erasing a user"); the counts per table',
    auth="admin",
    response=ErasureReport,
)
async def erase_user(request: Request[AppState]) -> Response:
    user_id = request.path_params["user_id"]
    pool = request.state["pool"]
    # Deactivated first, and every app process told: no token of theirs works meanwhile.
    async with request.state["tokens"].changing(user_id):
        await users.deactivate_user(pool, user_id=user_id)
    report = await erasure.erase_user(
        pool, user_id=user_id, batch=request.state["settings"].app_erasure_batch
    )
    return record_response(report)


@endpoints.get("/v1/me", "The caller", response=User)
async def get_me(request: Request[AppState]) -> Response:
    return record_response(caller(request))


@endpoints.patch("/v1/me", "Update the caller's profile", body=UserPatch, response=User)
async def update_me(request: Request[AppState]) -> Response:
    me = caller(request)
    patch = await body_of(request, UserPatch)
    async with request.state["tokens"].changing(me.id):
        user = await users.update_user(request.state["pool"], user_id=me.id, patch=patch)
    return record_response(user)


@endpoints.post(
    "/v1/tokens",
    "Issue a new token for the caller",
    body=TokenDraft,
    body_optional=True,
    body_schema=_max_expires_in("expires_in"),
    response=TokenCreated,
    status=201,
    errors=(409,),  # too_many_tokens: APP_MAX_TOKENS_PER_USER
)
async def create_token(request: Request[AppState]) -> Response:
    me = caller(request)
    draft = await body_of(request, TokenDraft)
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


@endpoints.get(
    "/v1/tokens",
    "The caller's active tokens, newest first (no secrets): what there is to revoke",
    response=TokenList,
)
async def list_tokens(request: Request[AppState]) -> Response:
    """The caller's active tokens (not their secrets): what there is to revoke."""
    me = caller(request)
    limit = request.state["settings"].app_max_tokens_per_user
    return record_response(
        await users.list_tokens(request.state["pool"], user_id=me.id, limit=limit)
    )


@endpoints.delete("/v1/tokens/{token_id:uuid}", "Revoke one of the caller's tokens", status=204)
async def revoke_token(request: Request[AppState]) -> Response:
    me = caller(request)
    async with request.state["tokens"].changing(me.id):
        await users.revoke_token(
            request.state["pool"], user_id=me.id, token_id=request.path_params["token_id"]
        )
    return no_content()
