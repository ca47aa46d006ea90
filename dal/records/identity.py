"""Identity: passwords, sign-in sessions and their refresh tokens (README "Identity")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from dal.records.base import INPUT, ROW, Row
from dal.records.users import DisplayName, User, Username

# A password to set: 8 to 1024 characters, checked before anything is hashed (a hash of a
# megabyte of text would cost the server, not the client).
MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS = 8, 1024
NewPassword = Annotated[str, Field(min_length=MIN_PASSWORD_CHARS, max_length=MAX_PASSWORD_CHARS)]
# A password presented to sign in: bounded the same way above, any length below (a password
# set before a rule changed still signs in).
GivenPassword = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_CHARS)]
# A username presented to sign in: not checked against the username rule (an unknown name and
# a malformed one are answered alike), only bounded.
GivenUsername = Annotated[str, Field(min_length=1, max_length=256)]
# A refresh token as issued ("mnemo_rt_" and 43 characters), with room to spare.
RefreshToken = Annotated[str, Field(min_length=1, max_length=200)]

SessionEnd = Literal["logout", "refresh_token_reused", "password_changed", "password_set"]


class AuthSession(Row):
    """A sign-in session: the family of its refresh tokens, live until ``expires_at`` unless
    revoked."""

    id: UUID
    user_id: UUID
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: SessionEnd | None


class Login(BaseModel):
    model_config = INPUT
    username: GivenUsername
    password: GivenPassword


class Signup(BaseModel):
    model_config = INPUT
    username: Username
    password: NewPassword
    display_name: DisplayName | None = None


class RefreshRequest(BaseModel):
    model_config = INPUT
    refresh_token: RefreshToken


class LogoutRequest(BaseModel):
    """Sign out one session: the one of this refresh token, or (none given) the one of the
    access token that authorizes the request."""

    model_config = INPUT
    refresh_token: RefreshToken | None = None


class PasswordChange(BaseModel):
    model_config = INPUT
    current_password: GivenPassword
    new_password: NewPassword


class PasswordSet(BaseModel):
    model_config = INPUT
    password: NewPassword


class SignedIn(BaseModel):
    """A new session's tokens: what the gateway hands the route (the route signs the JWT)."""

    model_config = ROW
    user: User
    session: AuthSession
    refresh_token: str
