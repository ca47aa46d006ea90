"""Bearer-token authentication: users by their API tokens or access tokens (JWTs, README
"Identity"), the admin by APP_ADMIN_TOKEN.

Endpoints declare their auth (app.endpoints); the route checks it before the handler runs, and
a handler of a user's endpoint reads the user with ``caller(request)``."""

from __future__ import annotations

import hmac
from uuid import UUID

from starlette.requests import Request

from app.errors import Forbidden, Unauthorized
from app.identity import BAD_TOKEN
from app.state import AppState
from dal.errors import NotFound
from dal.gateways import identity as sessions
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
    """The active user whose token authorizes this request: an API token (``mnemo_...``) or an
    access token (a JWT, README "Identity"), whose session is then ``session_id(request)``."""
    token = bearer_token(request)
    if _is_admin_token(request, token):
        raise Forbidden("the admin token acts for no user: use a user's token")
    pool = request.state["pool"]
    if not token.startswith(users.TOKEN_PREFIX):
        return await _access_token_user(request, token)

    async def lookup() -> TokenHolder:
        return await users.get_user_by_token(pool, secret=token)

    try:
        return await request.state["tokens"].user(users.hash_token(token), lookup)
    except NotFound:
        raise Unauthorized(BAD_TOKEN) from None


async def _access_token_user(request: Request[AppState], token: str) -> User:
    """The user of an access token: its signature and expiry checked here, without the
    database; its session (unrevoked, unexpired, its user active) through the TokenCache, keyed
    by the session, so that the steady state costs no round trip either, and a logout or a
    deactivation (NOTIFY mnemo_auth) drops it in every process at once."""
    identity = request.state["identity"]
    claims = identity.access_tokens.check(token, now=identity.clock.now())
    pool = request.state["pool"]

    async def lookup() -> TokenHolder:
        return await sessions.get_session_user(
            pool, session_id=claims.session_id, user_id=claims.user_id, now=identity.clock.now()
        )

    try:
        user = await request.state["tokens"].user(b"sid:" + claims.session_id.bytes, lookup)
    except NotFound:
        raise Unauthorized(BAD_TOKEN) from None
    if user.id != claims.user_id:  # a session is its user's for life; kept as a guard
        raise Unauthorized(BAD_TOKEN)
    request.scope["session_id"] = claims.session_id
    return user


def session_id(request: Request[AppState]) -> UUID | None:
    """The session of the access token that authorized this request; None for an API token."""
    value = request.scope.get("session_id")
    return value if isinstance(value, UUID) else None


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
