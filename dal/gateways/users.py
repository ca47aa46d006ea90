"""Users and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from uuid import UUID

import asyncpg

from dal.database import Executor, fetch_all, fetch_one, transaction
from dal.errors import Conflict, InvalidInput, LimitReached, NotFound
from dal.ids import new_id
from dal.queries import Q
from dal.records.users import (
    MAX_TOKEN_EXPIRES_IN,
    IssuedToken,
    NewUser,
    Token,
    TokenHolder,
    TokenList,
    User,
    UserDraft,
    UserPatch,
)

TOKEN_PREFIX = "mnemo_"


def hash_token(secret: str) -> bytes:
    """SHA-256 of a bearer token: tokens are random, so a fast unsalted hash is enough."""
    return hashlib.sha256(secret.encode()).digest()


async def insert_user(db: Executor, *, draft: UserDraft) -> User:
    """Create a user; Conflict if the username is taken."""
    try:
        row = await fetch_one(
            db,
            Q["insert_user"],
            new_id(),
            draft.username,
            draft.display_name,
            draft.avatar_url,
            draft.metadata,
        )
    except Conflict as exc:
        raise Conflict(f"username {draft.username!r} is taken", constraint=exc.constraint) from exc
    assert row is not None  # INSERT ... RETURNING always returns the row
    return User.from_row(row)


async def get_user(db: Executor, *, user_id: UUID) -> User:
    """The user with this id (active or not); NotFound if there is none."""
    row = await fetch_one(db, Q["get_user"], user_id)
    if row is None:
        raise NotFound("user", user_id)
    return User.from_row(row)


async def get_user_by_username(db: Executor, *, username: str) -> User:
    """The user with this username (case-insensitive); NotFound if there is none."""
    row = await fetch_one(db, Q["get_user_by_username"], username.strip().lower())
    if row is None:
        raise NotFound("user", username)
    return User.from_row(row)


async def update_user(db: Executor, *, user_id: UUID, patch: UserPatch) -> User:
    """Change the profile fields ``patch`` holds (a null display_name or avatar_url clears it,
    an absent one stays); NotFound if there is no such user."""
    given = patch.model_fields_set
    row = await fetch_one(
        db,
        Q["update_user"],
        user_id,
        "display_name" in given,
        patch.display_name,
        "avatar_url" in given,
        patch.avatar_url,
        patch.metadata,
    )
    if row is None:
        raise NotFound("user", user_id)
    return User.from_row(row)


async def deactivate_user(db: Executor, *, user_id: UUID) -> User:
    """Deactivate a user (idempotent): their tokens stop working; NotFound if none."""
    row = await fetch_one(db, Q["deactivate_user"], user_id)
    if row is None:
        raise NotFound("user", user_id)
    return User.from_row(row)


async def get_user_locked(db: Executor, *, user_id: UUID) -> User:
    """The user with this id, its row locked until the caller's transaction ends (tokens are
    issued one at a time per user under it); NotFound if there is none."""
    row = await fetch_one(db, Q["get_user_locked"], user_id)
    if row is None:
        raise NotFound("user", user_id)
    return User.from_row(row)


async def insert_token(
    db: Executor,
    *,
    user_id: UUID,
    name: str | None = None,
    expires_in: int | None = None,
    max_active: int | None = None,
) -> IssuedToken:
    """Issue a new bearer token for a user. The secret is returned once; only its hash is kept.

    ``expires_in``: seconds until the token stops authenticating (None: never). ``max_active``:
    LimitReached (``too_many_tokens``) when the user holds that many unrevoked, unexpired
    tokens already; race-free only under ``get_user_locked`` (see ``issue_token``).
    NotFound if there is no such user.
    """
    if expires_in is not None and not 1 <= expires_in <= MAX_TOKEN_EXPIRES_IN:
        raise InvalidInput(f"expires_in must be between 1 and {MAX_TOKEN_EXPIRES_IN} seconds")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await fetch_one(
        db, Q["insert_token"], new_id(), user_id, hash_token(secret), name, expires_in, max_active
    )
    if row is None:
        raise LimitReached(
            f"a user may hold at most {max_active} active tokens: revoke one first",
            code="too_many_tokens",
        )
    return IssuedToken(token=Token.from_row(row), secret=secret)


async def issue_token(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    name: str | None = None,
    expires_in: int | None = None,
    max_active: int | None = None,
) -> IssuedToken:
    """``insert_token`` under the user's row lock, in one transaction: concurrent issues for
    one user never pass ``max_active`` together. NotFound if there is no such user."""
    async with transaction(pool) as conn:
        await get_user_locked(conn, user_id=user_id)
        return await insert_token(
            conn, user_id=user_id, name=name, expires_in=expires_in, max_active=max_active
        )


async def list_tokens(db: Executor, *, user_id: UUID, limit: int) -> TokenList:
    """The user's active (unrevoked, unexpired) tokens, newest first, at most ``limit``."""
    rows = await fetch_all(db, Q["list_tokens"], user_id, limit + 1)
    return TokenList(items=Token.from_rows(rows[:limit]), has_more=len(rows) > limit)


async def get_user_by_token(db: Executor, *, secret: str) -> TokenHolder:
    """The active user a bearer token belongs to, and the seconds the token has left; NotFound
    if unknown, revoked, expired or deactivated."""
    row = await fetch_one(db, Q["get_user_by_token"], hash_token(secret))
    if row is None:
        raise NotFound("token")
    fields = dict(row.items())
    expires_in = fields.pop("expires_in")
    return TokenHolder.from_values({"user": User.from_values(fields), "expires_in": expires_in})


async def revoke_token(db: Executor, *, user_id: UUID, token_id: UUID) -> Token:
    """Revoke one of the user's tokens; NotFound if it is not theirs or already revoked."""
    row = await fetch_one(db, Q["revoke_token"], user_id, token_id)
    if row is None:
        raise NotFound("token", token_id)
    return Token.from_row(row)


async def create_user(
    pool: asyncpg.Pool[Any], *, draft: UserDraft, token_name: str | None = None
) -> NewUser:
    """Create a user and their first token (expiring after ``draft.token_expires_in`` seconds
    if given) in one transaction (both or neither)."""
    async with transaction(pool) as conn:
        user = await insert_user(conn, draft=draft)
        token = await insert_token(
            conn, user_id=user.id, name=token_name, expires_in=draft.token_expires_in
        )
    return NewUser(user=user, token=token)
