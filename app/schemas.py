"""Shapes that exist only on the HTTP surface (bodies and responses wrapping records)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import SkipJsonSchema

from dal.records.users import User

_OUT = ConfigDict(frozen=True, extra="forbid")


class UserCreated(BaseModel):
    """A new user and their first bearer token (shown this once)."""

    model_config = _OUT
    user: User
    token: str
    token_id: UUID
    # When the token stops working (token_expires_in); None: never (until revoked).
    token_expires_at: datetime | None = None


class TokenCreated(BaseModel):
    """A new bearer token for the caller (shown this once)."""

    model_config = _OUT
    id: UUID
    name: str | None
    created_at: datetime
    # When the token stops working (expires_in); None: never (until revoked).
    expires_at: datetime | None
    token: str


class Tokens(BaseModel):
    """A signed-in session's tokens: ``access_token`` for ``Authorization: Bearer``,
    ``refresh_token`` (shown this once) to get the next pair."""

    model_config = _OUT
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    # Seconds the access token is valid.
    expires_in: int
    refresh_token: str
    # Seconds the refresh token is valid unless used (each refresh moves it again).
    refresh_expires_in: int
    user: User


class Health(BaseModel):
    model_config = _OUT
    status: Literal["ok", "unavailable", "migrations_pending"]
    server_version: int | None = None
    pending_migrations: list[str] = []


class ErrorDetail(BaseModel):
    model_config = _OUT
    field: str
    message: str
    type: str


class ErrorInfo(BaseModel):
    model_config = _OUT
    code: str
    message: str
    # Left out when there are none (never null).
    details: list[ErrorDetail] | SkipJsonSchema[None] = None


class ErrorBody(BaseModel):
    model_config = _OUT
    error: ErrorInfo
