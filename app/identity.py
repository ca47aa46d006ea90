"""The machinery of identity (README "Identity"): the clock, password hashing (Argon2id, in
threads, a bounded number at once) and access tokens (HS256 JWTs checked without the
database). The routes are app/routes/auth.py; app/auth.py accepts access tokens."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import argon2
import jwt
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Busy, Unauthorized
from dal.gateways.identity import LockoutPolicy
from dal.settings import Settings
from dal.vault import secret_file

T = TypeVar("T")

JWT_KEY_FILE = "jwt-key"
ISSUER = "mnemo"
ALGORITHM = "HS256"
# Longer than any access token this app signs (about 300 characters): longer is refused unread.
MAX_ACCESS_TOKEN_CHARS = 4096
BAD_TOKEN = "the token is invalid, revoked or expired, or its user is deactivated"


@dataclass
class Clock:
    """The app's time for everything identity compares (tokens' and sessions' expiry, the
    lockout): real time, moved by ``offset`` (tests move it instead of sleeping)."""

    offset: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def password_hasher(settings: Settings) -> argon2.PasswordHasher:
    """Argon2id with APP_ARGON2_*."""
    return argon2.PasswordHasher(
        time_cost=settings.app_argon2_time_cost,
        memory_cost=settings.app_argon2_memory_kib,
        parallelism=settings.app_argon2_parallelism,
        type=argon2.Type.ID,
    )


def lockout_policy(settings: Settings) -> LockoutPolicy:
    return LockoutPolicy(
        free_failures=settings.app_login_free_failures,
        first_lock_seconds=settings.app_login_lock_seconds,
        max_lock_seconds=settings.app_login_max_lock_seconds,
        window_seconds=settings.app_login_failure_window_seconds,
    )


class Passwords:
    """Hashes and verifies passwords in threads, at most APP_MAX_CONCURRENT_HASHES at once
    (one per CPU by default): waiting for a slot longer than APP_HASH_WAIT_SECONDS is Busy
    (503 with Retry-After). A hash that runs on after its caller left keeps its slot."""

    def __init__(self, settings: Settings) -> None:
        self.hasher = password_hasher(settings)
        self.limit = settings.app_max_concurrent_hashes or os.cpu_count() or 1
        self._slots = asyncio.Semaphore(self.limit)
        self._wait = settings.app_hash_wait_seconds
        self._dummy: asyncio.Future[str] | None = None

    def start(self) -> None:
        """Make the dummy hash (verified when a user is unknown or has no password, so that
        both cost what a real check costs), in the background: the app starts at once."""
        self._dummy = asyncio.ensure_future(
            asyncio.to_thread(self.hasher.hash, secrets.token_urlsafe(16))
        )

    async def stop(self) -> None:
        if self._dummy is not None and not self._dummy.done():
            self._dummy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dummy

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        try:
            async with asyncio.timeout(self._wait):
                await self._slots.acquire()
        except TimeoutError:
            raise Busy("too many passwords are being checked at once: try again shortly") from None
        job = asyncio.ensure_future(asyncio.to_thread(work, *args))
        job.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(job)

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether the password is the hash's (False for a malformed hash, never an error)."""
        return await self._run(_verify, self.hasher, password_hash, password)

    async def verify_nobody(self, password: str) -> bool:
        """The work of ``verify`` for a user that is unknown or has no password: False."""
        if self._dummy is None:
            self.start()
        assert self._dummy is not None
        await self._run(_verify, self.hasher, await asyncio.shield(self._dummy), password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than APP_ARGON2_*'s."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


def _verify(hasher: argon2.PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password.encode("utf-8", "surrogatepass"))
    except (VerificationError, InvalidHashError, ValueError):
        return False


def jwt_key(settings: Settings) -> bytes:
    """APP_JWT_SECRET, else DATA_DIR/jwt-key's (made once, mode 0600, with 64 random bytes)."""
    if settings.app_jwt_secret is not None:
        return settings.app_jwt_secret.get_secret_value().encode()
    path = secret_file(settings.data_dir / JWT_KEY_FILE, lambda: secrets.token_urlsafe(64))
    key = path.read_text().strip().encode()
    if len(key) < 32:
        raise ValueError(f"{path} holds fewer than 32 bytes: delete it to make a new one")
    return key


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID
    expires: int  # exp, seconds since the epoch


class AccessTokens:
    """Signs and checks access tokens: HS256 JWTs with sub (user), sid (session), iat, exp,
    iss "mnemo" and typ "access". A check needs no database: the signature and the expiry
    (by the app's clock); who the session's user is now is app/auth.py's question."""

    def __init__(self, key: bytes, lifetime: int) -> None:
        self._key = key
        self.lifetime = lifetime

    def issue(
        self, *, user_id: UUID, session_id: UUID, now: datetime, session_expires: datetime
    ) -> tuple[str, int]:
        """A token and the seconds it is valid: APP_ACCESS_TOKEN_SECONDS, never past the
        session's end."""
        issued = int(now.timestamp())
        expires = min(issued + self.lifetime, math.floor(session_expires.timestamp()))
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": issued,
            "exp": expires,
            "iss": ISSUER,
            "typ": "access",
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), max(0, expires - issued)

    def check(self, token: str, *, now: datetime) -> AccessClaims:
        """The claims of a token this app signed and that has not expired at ``now``;
        Unauthorized otherwise (code token_expired for an expired one)."""
        if len(token) > MAX_ACCESS_TOKEN_CHARS or not token.isascii():
            raise Unauthorized(BAD_TOKEN)
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    "require": ["sub", "sid", "iat", "exp", "iss", "typ"],
                    "verify_exp": False,  # by the app's clock, below
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Unauthorized(BAD_TOKEN) from None
        expires = claims.get("exp")
        if claims.get("typ") != "access" or type(expires) is not int:
            raise Unauthorized(BAD_TOKEN)
        try:
            user_id, session_id = UUID(str(claims["sub"])), UUID(str(claims["sid"]))
        except ValueError:
            raise Unauthorized(BAD_TOKEN) from None
        if now.timestamp() >= expires:
            raise Unauthorized("the access token expired: refresh it", code="token_expired")
        return AccessClaims(user_id=user_id, session_id=session_id, expires=expires)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the app holds for identity (AppState["identity"])."""

    clock: Clock
    passwords: Passwords
    access_tokens: AccessTokens
    lockout: LockoutPolicy
    refresh_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        return cls(
            clock=Clock(),
            passwords=Passwords(settings),
            access_tokens=AccessTokens(jwt_key(settings), settings.app_access_token_seconds),
            lockout=lockout_policy(settings),
            refresh_seconds=settings.app_refresh_token_seconds,
        )


@contextlib.asynccontextmanager
async def running(identity: Identity) -> AsyncIterator[Identity]:
    """The dummy hash made in the background while the block runs."""
    identity.passwords.start()
    try:
        yield identity
    finally:
        await identity.passwords.stop()
