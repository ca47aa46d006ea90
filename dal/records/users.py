"""Users and their bearer tokens."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from dal.records.base import INPUT, ROW, ListPage, Metadata, Patch, Row, whole_number

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _check_username(value: str) -> str:
    value = value.strip().lower()
    if not _USERNAME.match(value):
        raise ValueError(
            "a username is 1-64 characters: letters, digits, '_', '.', '-'; "
            "it starts with a letter or digit"
        )
    return value


# Usernames are case-insensitive: stored lower-cased.
Username = Annotated[str, AfterValidator(_check_username)]

DisplayName = Annotated[str, Field(max_length=200)]
# A token's lifetime in seconds: at most 100 years here (APP_MAX_TOKEN_EXPIRES_IN may allow
# less), which keeps now() + it far inside PostgreSQL's timestamps.
MAX_TOKEN_EXPIRES_IN = 100 * 365 * 24 * 3600


# (The bounds come first: they belong to the integer, and the schema shows them as such.)
TokenExpiresIn = Annotated[int, Field(ge=1, le=MAX_TOKEN_EXPIRES_IN), BeforeValidator(whole_number)]

Url = Annotated[str, Field(max_length=2000)]

# --- users and tokens -------------------------------------------------------------------


class User(Row):
    id: UUID
    username: str
    display_name: str | None
    avatar_url: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None


class TokenHolder(Row):
    """The active user a token authenticates, and the seconds the token has left by the
    database's clock (None: it never expires)."""

    user: User
    expires_in: float | None


class UserDraft(BaseModel):
    model_config = INPUT
    username: Username
    display_name: DisplayName | None = None
    avatar_url: Url | None = None
    metadata: Metadata = Field(default_factory=dict)
    # Seconds until the user's first token expires; None: it never does.
    token_expires_in: TokenExpiresIn | None = None


class UserPatch(Patch):
    """Fields to change: an absent field stays as it is; ``null`` clears ``display_name`` or
    ``avatar_url`` (``metadata`` cannot be null: ``{}`` empties it)."""

    display_name: DisplayName | None = None
    avatar_url: Url | None = None
    metadata: Metadata | None = None  # null refused (below); app/openapi.py says so

    @model_validator(mode="after")
    def _not_empty(self) -> Self:  # replaces Patch's: here a null is a change
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self

    @field_validator("metadata")
    @classmethod
    def _metadata_not_null(cls, value: Metadata | None) -> Metadata | None:
        if value is None:
            raise ValueError("metadata cannot be null: send {} to empty it")
        return value


class Token(Row):
    id: UUID
    user_id: UUID
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenDraft(BaseModel):
    model_config = INPUT
    name: Annotated[str, Field(max_length=200)] | None = None
    # Seconds until the token expires; None: it never does (it works until revoked).
    expires_in: TokenExpiresIn | None = None


class IssuedToken(BaseModel):
    """A new token: ``secret`` is the bearer token, shown this once and never stored."""

    model_config = ROW
    token: Token
    secret: str


class TokenList(ListPage[Token]):
    """A user's active (unrevoked, unexpired) tokens, newest first; ``has_more`` when more
    are active than listed (possible only after APP_MAX_TOKENS_PER_USER was lowered)."""


class NewUser(BaseModel):
    """A user created together with their first token."""

    model_config = ROW
    user: User
    token: IssuedToken
