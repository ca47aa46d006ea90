"""Identity (README "Identity"): password sign-in, refresh, sign-out, sign-up and passwords.

An access token is an HS256 JWT of APP_ACCESS_TOKEN_SECONDS, accepted wherever an API token is
(app/auth.py); a refresh token (``mnemo_rt_...``) gets a new pair once, and presenting it a
second time revokes its whole session (a stolen token used by two parties)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from app.auth import bearer_token, caller, current_user, session_id
from app.endpoints import RETRY_AFTER, Answer, Endpoints, body_of
from app.errors import Forbidden, LoginLocked, Unauthorized
from app.responses import no_content, record_response
from app.routes.users import username_schema
from app.schemas import ErrorBody, Tokens
from app.state import AppState
from dal.database import transaction
from dal.errors import Conflict, InvalidInput, NotFound
from dal.gateways import identity, users
from dal.records.identity import (
    Login,
    LogoutRequest,
    PasswordChange,
    PasswordSet,
    RefreshRequest,
    SignedIn,
    Signup,
)
from dal.records.users import User, UserDraft

endpoints = Endpoints()

WRONG = "wrong username or password"
# Characters of a client address kept for the lockout (an IPv6 address with its zone fits).
MAX_CLIENT_CHARS = 256
_LOCKED = Answer(
    429,
    "Sign-ins of this username from this address are locked for Retry-After seconds "
    '(code login_locked; README "Identity")',
    body=ErrorBody,
    headers=(RETRY_AFTER,),
)


def _client(request: Request[AppState]) -> str:
    """The client's address as the server saw it (behind a proxy, the proxy's unless uvicorn
    trusts its X-Forwarded-For: README "Identity")."""
    host = request.client.host if request.client else ""
    return (host or "unknown")[:MAX_CLIENT_CHARS]


def _tokens(request: Request[AppState], signed: SignedIn, now: datetime) -> Tokens:
    access, expires_in = request.state["identity"].access_tokens.issue(
        user_id=signed.user.id,
        session_id=signed.session.id,
        now=now,
        session_expires=signed.session.expires_at,
    )
    return Tokens(
        access_token=access,
        expires_in=expires_in,
        refresh_token=signed.refresh_token,
        refresh_expires_in=max(0, math.floor((signed.session.expires_at - now).total_seconds())),
        user=signed.user,
    )


async def _check_password(
    request: Request[AppState], username: str, password: str, now: datetime
) -> User | None:
    """The active user whose password this is, else None (the failure counted); LoginLocked
    while (username, client) is locked, the password unchecked. The attempt is counted before
    the check (a success clears the count), so that guesses sent at once cannot all be checked
    before the lock. An unknown username costs one verification as a known one does (against a
    dummy hash)."""
    pool, state = request.state["pool"], request.state["identity"]
    client = _client(request)
    counted = await identity.count_login_attempt(
        pool, username=username, client=client, now=now, policy=state.lockout
    )
    if not counted:
        locked_until = await identity.get_login_lock(
            pool, username=username, client=client, now=now
        )
        seconds = 1 if locked_until is None else math.ceil((locked_until - now).total_seconds())
        seconds = max(1, seconds)
        raise LoginLocked(
            f"too many failed sign-ins: try again in {seconds} seconds", retry_after=seconds
        )
    found = await identity.get_login(pool, username=username)
    user, stored = found if found is not None else (None, None)
    if user is None or stored is None:
        ok = await state.passwords.verify_nobody(password)
    else:
        ok = await state.passwords.verify(stored, password)
    if not ok or user is None or stored is None or user.deactivated_at is not None:
        return None
    await identity.clear_login_failures(pool, username=username, client=client)
    if state.passwords.needs_rehash(stored):
        fresh = await state.passwords.hash(password)
        await identity.update_password_hash(pool, user_id=user.id, old_hash=stored, new_hash=fresh)
    return user


@endpoints.post(
    "/v1/auth/login",
    "Sign in with a username and password: an access token and a refresh token",
    auth="none",
    body=Login,
    response=Tokens,
    answers=(_LOCKED,),
    errors=(401,),  # invalid_credentials
)
async def login(request: Request[AppState]) -> Response:
    body = await body_of(request, Login)
    state = request.state["identity"]
    now = state.clock.now()
    user = await _check_password(request, body.username.strip().lower(), body.password, now)
    if user is None:
        raise Unauthorized(WRONG, code="invalid_credentials")
    signed = await identity.start_session(
        request.state["pool"],
        user=user,
        now=now,
        expires_at=now + timedelta(seconds=state.refresh_seconds),
    )
    return record_response(_tokens(request, signed, now))


@endpoints.post(
    "/v1/auth/refresh",
    "A new pair of tokens for a refresh token, which is used up (presenting it again revokes "
    "its session)",
    auth="none",
    body=RefreshRequest,
    response=Tokens,
    errors=(401,),  # invalid_refresh_token, refresh_token_reused
)
async def refresh(request: Request[AppState]) -> Response:
    body = await body_of(request, RefreshRequest)
    pool, state = request.state["pool"], request.state["identity"]
    now = state.clock.now()
    async with transaction(pool) as conn:
        rotated = await identity.rotate_refresh_token(
            conn,
            secret=body.refresh_token,
            now=now,
            expires_at=now + timedelta(seconds=state.refresh_seconds),
        )
        user = None if rotated is None else await users.get_user(conn, user_id=rotated[0].user_id)
    if rotated is None or user is None:  # (user is None only with rotated)
        try:
            session, used_at = await identity.get_refresh_token(pool, secret=body.refresh_token)
        except NotFound:
            session, used_at = None, None
        if session is not None and used_at is not None:
            async with request.state["tokens"].changing(session.user_id):
                await identity.revoke_session(
                    pool, session_id=session.id, now=now, reason="refresh_token_reused"
                )
            raise Unauthorized(
                "this refresh token was used already: its session is revoked (sign in again)",
                code="refresh_token_reused",
            )
        raise Unauthorized(
            "the refresh token is invalid, revoked or expired", code="invalid_refresh_token"
        )
    session, secret = rotated
    signed = SignedIn(user=user, session=session, refresh_token=secret)
    return record_response(_tokens(request, signed, now))


@endpoints.post(
    "/v1/auth/logout",
    "Sign out: revoke the session of the refresh token given, else of the access token",
    auth="none",
    body=LogoutRequest,
    body_optional=True,
    status=204,
    errors=(401, 403),  # 403: the admin token, which has no session
)
async def logout(request: Request[AppState]) -> Response:
    body = await body_of(request, LogoutRequest)
    pool, now = request.state["pool"], request.state["identity"].clock.now()
    if body.refresh_token is not None:
        try:
            session, _ = await identity.get_refresh_token(pool, secret=body.refresh_token)
        except NotFound:
            return no_content()  # nothing to sign out: as if done
        owner, to_revoke = session.user_id, session.id
    else:
        bearer_token(request)  # 401 without one
        user = await current_user(request)
        sid = session_id(request)
        if sid is None:
            raise InvalidInput(
                "sign out with a refresh token or an access token; an API token is revoked "
                "with DELETE /v1/tokens/{token_id}"
            )
        owner, to_revoke = user.id, sid
    async with request.state["tokens"].changing(owner):
        await identity.revoke_session(pool, session_id=to_revoke, now=now, reason="logout")
    return no_content()


@endpoints.post(
    "/v1/auth/signup",
    "Create an account with a password and sign in (APP_SIGNUP=open; 403 signup_closed else)",
    auth="none",
    body=Signup,
    body_schema=username_schema,
    response=Tokens,
    status=201,
    errors=(403, 409),
)
async def signup(request: Request[AppState]) -> Response:
    body = await body_of(request, Signup)  # a bad body is 4xx either way
    if request.state["settings"].app_signup != "open":
        raise Forbidden("sign-up is closed on this server (APP_SIGNUP)", code="signup_closed")
    state = request.state["identity"]
    password_hash = await state.passwords.hash(body.password)
    now = state.clock.now()
    draft = UserDraft(username=body.username, display_name=body.display_name)
    async with transaction(request.state["pool"]) as conn:
        try:
            user = await users.insert_user(conn, draft=draft)
        except Conflict as exc:
            raise Conflict(f"the username {body.username!r} is taken") from exc
        await identity.upsert_password(conn, user_id=user.id, password_hash=password_hash, now=now)
        signed = await identity.open_session(
            conn, user=user, now=now, expires_at=now + timedelta(seconds=state.refresh_seconds)
        )
    return record_response(_tokens(request, signed, now), 201)


@endpoints.post(
    "/v1/auth/password",
    "Change the caller's password (their other sessions are signed out)",
    body=PasswordChange,
    status=204,
    answers=(_LOCKED,),
)
async def change_password(request: Request[AppState]) -> Response:
    me = caller(request)
    body = await body_of(request, PasswordChange)
    state = request.state["identity"]
    now = state.clock.now()
    if await _check_password(request, me.username, body.current_password, now) is None:
        raise Forbidden("the current password is wrong", code="invalid_credentials")
    password_hash = await state.passwords.hash(body.new_password)
    async with request.state["tokens"].changing(me.id):
        await identity.set_password(
            request.state["pool"],
            user_id=me.id,
            password_hash=password_hash,
            now=now,
            reason="password_changed",
            keep_session=session_id(request),
        )
    return no_content()


@endpoints.put(
    "/v1/users/{user_id:uuid}/password",
    "Set a user's password (their sessions are signed out)",
    auth="admin",
    body=PasswordSet,
    status=204,
)
async def set_password(request: Request[AppState]) -> Response:
    body = await body_of(request, PasswordSet)
    user_id = request.path_params["user_id"]
    state = request.state["identity"]
    password_hash = await state.passwords.hash(body.password)
    async with request.state["tokens"].changing(user_id):
        await identity.set_password(
            request.state["pool"],
            user_id=user_id,
            password_hash=password_hash,
            now=state.clock.now(),
            reason="password_set",
        )
    return no_content()
