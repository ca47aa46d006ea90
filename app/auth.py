"""Bearer-token authentication: users by their API tokens, the admin by APP_ADMIN_TOKEN.

Endpoints declare their auth (app.endpoints); the route checks it before the handler runs, and
a handler of a user's endpoint reads the user with ``caller(request)``."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from app.errors import Forbidden, Unauthorized
from app.state import AppState
from dal.errors import NotFound
from dal.gateways import users
from dal.records.users import TokenHolder, User


def bearer_token(request: Request[AppState]) -> str:
    """The token of ``Authorization: Bearer <token>``; Unauthorized when absent."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    return token


def _is_admin_token(request: Request[AppState], token: str) -> bool:
    admin = request.state["settings"].app_admin_token
    return admin is not None and hmac.compare_digest(
        admin.get_secret_value().encode(), token.encode()
    )


async def current_user(request: Request[AppState]) -> User:
    """The active user whose token authorizes this request."""
    token = bearer_token(request)
    if _is_admin_token(request, token):
        raise Forbidden("the admin token acts for no user: use a user's token")
    pool = request.state["pool"]

    async def lookup() -> TokenHolder:
        return await users.get_user_by_token(pool, secret=token)

    try:
        return await request.state["tokens"].user(users.hash_token(token), lookup)
    except NotFound:
        raise Unauthorized(
            "the token is invalid, revoked or expired, or its user is deactivated"
        ) from None


def caller(request: Request[AppState]) -> User:
    """The user whose token authorized this request (on an endpoint declared auth="user")."""
    user = request.scope.get("user")
    if not isinstance(user, User):
        raise RuntimeError(f"{request.method} {request.url.path} is not declared auth='user'")
    return user


async def require_admin(request: Request[AppState]) -> None:
    """Pass only with the admin token: a user's token is Forbidden, anything else Unauthorized."""
    token = bearer_token(request)
    if _is_admin_token(request, token):
        return
    await current_user(request)  # Unauthorized unless it is a valid user token
    raise Forbidden("this route needs the admin token")
