"""Users and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from uuid import UUID

import asyncpg

from dal.database import Executor, fetch_one, transaction
from dal.errors import Conflict, NotFound
from dal.ids import new_id
from dal.queries import Q
from dal.records import IssuedToken, NewUser, Token, User, UserDraft, UserPatch

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


async def insert_token(db: Executor, *, user_id: UUID, name: str | None = None) -> IssuedToken:
    """Issue a new bearer token for a user. The secret is returned once; only its hash is kept."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await fetch_one(db, Q["insert_token"], new_id(), user_id, hash_token(secret), name)
    assert row is not None  # INSERT ... RETURNING always returns the row
    return IssuedToken(token=Token.from_row(row), secret=secret)


async def get_user_by_token(db: Executor, *, secret: str) -> User:
    """The active user a bearer token belongs to; NotFound if unknown, revoked or deactivated."""
    row = await fetch_one(db, Q["get_user_by_token"], hash_token(secret))
    if row is None:
        raise NotFound("token")
    return User.from_row(row)


async def revoke_token(db: Executor, *, user_id: UUID, token_id: UUID) -> Token:
    """Revoke one of the user's tokens; NotFound if it is not theirs or already revoked."""
    row = await fetch_one(db, Q["revoke_token"], user_id, token_id)
    if row is None:
        raise NotFound("token", token_id)
    return Token.from_row(row)


async def create_user(
    pool: asyncpg.Pool[Any], *, draft: UserDraft, token_name: str | None = None
) -> NewUser:
    """Create a user and their first token in one transaction (both or neither)."""
    async with transaction(pool) as conn:
        user = await insert_user(conn, draft=draft)
        token = await insert_token(conn, user_id=user.id, name=token_name)
    return NewUser(user=user, token=token)
