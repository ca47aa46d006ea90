"""Identity: users' passwords, sign-in sessions with their rotating refresh tokens, and the
lockout's login-failure counters (README "Identity"). Every ``now`` is the app's clock."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from dal.database import Executor, fetch_one, fetch_value, transaction
from dal.errors import NotFound
from dal.ids import new_id
from dal.queries import Q
from dal.records.identity import AuthSession, SessionEnd, SignedIn
from dal.records.users import TokenHolder, User

# Refresh tokens look like API tokens (secret scanners know the prefix) but are told apart.
REFRESH_TOKEN_PREFIX = "mnemo_rt_"
# Stale login-failure counters deleted after each failure, at most.
PRUNE_BATCH = 100


def hash_refresh_token(secret: str) -> bytes:
    """SHA-256 of a refresh token: tokens are random, so a fast unsalted hash is enough."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """APP_LOGIN_*: see ``count_login_attempt``."""

    free_failures: int
    first_lock_seconds: float
    max_lock_seconds: float
    window_seconds: int


async def get_login(db: Executor, *, username: str) -> tuple[User, str | None] | None:
    """The user of a normalized username (active or not) and their password hash (None: no
    password); None when no user has that name."""
    row = await fetch_one(db, Q["get_login"], username)
    if row is None:
        return None
    fields = dict(row.items())
    password_hash = fields.pop("password_hash")
    return User.from_values(fields), password_hash


async def get_password_hash(db: Executor, *, user_id: UUID) -> str | None:
    """A user's password hash; None when they have no password."""
    value = await fetch_value(db, Q["get_password_hash"], user_id)
    return None if value is None else str(value)


async def upsert_password(
    db: Executor, *, user_id: UUID, password_hash: str, now: datetime
) -> None:
    """Set a user's password hash; NotFound if there is no such user."""
    try:
        await fetch_one(db, Q["upsert_password"], user_id, password_hash, now)
    except NotFound:
        raise NotFound("user", user_id) from None


async def update_password_hash(
    db: Executor, *, user_id: UUID, old_hash: str, new_hash: str
) -> None:
    """Replace a hash by the same password's hash with new parameters, unless it changed."""
    await fetch_one(db, Q["update_password_hash"], user_id, old_hash, new_hash)


async def set_password(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    password_hash: str,
    now: datetime,
    reason: SessionEnd,
    keep_session: UUID | None = None,
) -> int:
    """Set a user's password and revoke their live sessions but ``keep_session``, in one
    transaction; returns how many were revoked. NotFound if there is no such user."""
    async with transaction(pool) as conn:
        await upsert_password(conn, user_id=user_id, password_hash=password_hash, now=now)
        return await revoke_user_sessions(
            conn, user_id=user_id, now=now, reason=reason, keep_session=keep_session
        )


async def open_session(
    conn: Executor, *, user: User, now: datetime, expires_at: datetime
) -> SignedIn:
    """A new session of the user with its first refresh token (the user's sessions that
    expired are deleted on the way). Run it in a transaction: several statements."""
    await fetch_one(conn, Q["delete_expired_auth_sessions"], user.id, now)
    row = await fetch_one(conn, Q["insert_auth_session"], new_id(), user.id, now, expires_at)
    assert row is not None  # INSERT ... RETURNING always returns the row
    session = AuthSession.from_row(row)
    secret = _new_refresh_token()
    await fetch_one(conn, Q["insert_refresh_token"], session.id, hash_refresh_token(secret), now)
    return SignedIn(user=user, session=session, refresh_token=secret)


async def start_session(
    pool: asyncpg.Pool[Any], *, user: User, now: datetime, expires_at: datetime
) -> SignedIn:
    """``open_session`` in a transaction of its own."""
    async with transaction(pool) as conn:
        return await open_session(conn, user=user, now=now, expires_at=expires_at)


async def rotate_refresh_token(
    db: Executor, *, secret: str, now: datetime, expires_at: datetime
) -> tuple[AuthSession, str] | None:
    """Use a refresh token up: if it is its live session's current one, mark it used, move
    the session's end to ``expires_at`` and return the session with its new current token;
    None if nothing changed (unknown, used, revoked, expired, user deactivated)."""
    new_secret = _new_refresh_token()
    row = await fetch_one(
        db,
        Q["rotate_refresh_token"],
        hash_refresh_token(secret),
        now,
        expires_at,
        hash_refresh_token(new_secret),
    )
    if row is None:
        return None
    return AuthSession.from_row(row), new_secret


async def get_refresh_token(db: Executor, *, secret: str) -> tuple[AuthSession, datetime | None]:
    """The session of a refresh token and when the token was used (None: it is current);
    NotFound for a token never issued."""
    row = await fetch_one(db, Q["get_refresh_token"], hash_refresh_token(secret))
    if row is None:
        raise NotFound("refresh token")
    fields = dict(row.items())
    used_at = fields.pop("used_at")
    return AuthSession.from_values(fields), used_at


async def revoke_session(
    db: Executor, *, session_id: UUID, now: datetime, reason: SessionEnd
) -> AuthSession | None:
    """Revoke a session; None if it was revoked already or does not exist."""
    row = await fetch_one(db, Q["revoke_auth_session"], session_id, now, reason)
    return None if row is None else AuthSession.from_row(row)


async def revoke_user_sessions(
    db: Executor,
    *,
    user_id: UUID,
    now: datetime,
    reason: SessionEnd,
    keep_session: UUID | None = None,
) -> int:
    """Revoke every live session of a user but ``keep_session``; returns how many."""
    return int(
        await fetch_value(db, Q["revoke_user_auth_sessions"], user_id, now, reason, keep_session)
    )


async def get_session_user(
    db: Executor, *, session_id: UUID, user_id: UUID, now: datetime
) -> TokenHolder:
    """The active user of a live session of theirs, and the seconds the session has left:
    who an access token authenticates. NotFound if revoked, expired, deactivated or not
    theirs."""
    row = await fetch_one(db, Q["get_session_user"], session_id, user_id, now)
    if row is None:
        raise NotFound("session", session_id)
    fields = dict(row.items())
    expires_in = fields.pop("expires_in")
    return TokenHolder.from_values({"user": User.from_values(fields), "expires_in": expires_in})


async def get_login_lock(
    db: Executor, *, username: str, client: str, now: datetime
) -> datetime | None:
    """When the lock of (username, client) ends, if it is locked at ``now``."""
    value = await fetch_value(db, Q["get_login_lock"], username, client, now)
    return value if isinstance(value, datetime) else None


async def count_login_attempt(
    db: Executor, *, username: str, client: str, now: datetime, policy: LockoutPolicy
) -> bool:
    """Count a sign-in attempt of (username, client) before its password is checked, as a
    failure until ``clear_login_failures`` says it succeeded: attempts sent at once are each
    counted, so no more than ``policy.free_failures`` of them are checked before the pair
    locks. False, nothing counted, while the pair is locked. Past the free failures each
    failure locks the pair, ``first_lock_seconds`` doubling per further failure up to
    ``max_lock_seconds``. Then deletes some counters stale for ``window_seconds``."""
    stale_before = now - timedelta(seconds=policy.window_seconds)
    row = await fetch_one(
        db,
        Q["upsert_login_attempt"],
        username,
        client,
        now,
        stale_before,
        policy.free_failures,
        policy.first_lock_seconds,
        policy.max_lock_seconds,
    )
    await fetch_value(db, Q["delete_stale_login_failures"], stale_before, now, PRUNE_BATCH)
    return row is not None


async def clear_login_failures(db: Executor, *, username: str, client: str) -> None:
    """A successful sign-in of (username, client): its count starts again."""
    await fetch_one(db, Q["delete_login_failures"], username, client)
