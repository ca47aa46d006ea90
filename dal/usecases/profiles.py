"""Runtime profiles beyond one statement (README "Runtime profiles"): ``Resolver``, what a kind
resolves to kept briefly in-process and dropped on any change, and ``rotate_secrets``, every
stored secret re-encrypted with the first key (``mnemo keys rotate``).

``Resolver`` is what code calling an LLM on every turn should use: ``resolve`` asks the
database once per kind and user every APP_PROFILE_CACHE_SECONDS at most. It forgets an entry
as soon as anything could have made it wrong:

* a change to ``profiles`` anywhere (this process, another, the CLI, psql) fires a trigger
  (migration 20261207_08) that NOTIFYs channel ``mnemo_profiles`` at commit with the scope it
  changed; a listener connection per ``Resolver`` hears it and drops that user's entries, or
  every entry for the system's scope (every user's resolution may fall back to it);
* a lookup that was running while anything was forgotten stores nothing (its answer may
  predate the change);
* entries are trusted only while the listener is connected and a check sent less than
  ``trust_for`` seconds ago has answered (its answer comes after every notification committed
  before it was sent), as app/token_cache.py does: while the database is unreachable or frozen,
  every resolve asks it (and falls back to the environment within DB_CONNECTION_TIMEOUT).

What the database cannot give (it is unavailable) is answered from the environment and never
kept; a secret that does not decrypt raises EncryptionKeyMismatch and is never kept either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from dal.errors import EncryptionKeyMismatch, Unavailable
from dal.gateways import profiles
from dal.gateways.profiles import SYSTEM_SCOPE, Cipher, Resolved
from dal.settings import Settings
from dal.usecases import listening

_log = logging.getLogger(__name__)

CHANNEL = "mnemo_profiles"
LISTENER_NAME = "mnemo-profile-listener"
MAX_ENTRIES = 10_000


class Resolver:
    """``profiles.resolve`` with a brief in-process cache; ``running()`` (or ``run()`` as a
    task) is its listener, without which nothing is kept."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool[Any], vault: Cipher) -> None:
        self._settings = settings
        self._pool = pool
        self._vault = vault
        self._ttl = settings.app_profile_cache_seconds
        self._entries: dict[tuple[str, UUID | None], tuple[Resolved, float]] = {}
        self._generation = 0
        self._listening = False
        self._vouched_until = 0.0
        self.trust_for = listening.trust_for(settings)

    @property
    def trusted(self) -> bool:
        """Whether entries are used now (the listener is connected and passed a recent check)."""
        return self._listening and time.monotonic() < self._vouched_until

    def __len__(self) -> int:
        return len(self._entries)

    async def resolve(self, *, kind: str, user_id: UUID | None) -> Resolved:
        """What ``kind`` comes to for the user (None: the system), as ``profiles.resolve``:
        from the cache when trusted and fresh, else from the database (kept if nothing changed
        meanwhile), else, the database unavailable, from the environment (not kept)."""
        key = (kind, user_id)
        if self.trusted:
            entry = self._entries.get(key)
            if entry is not None:
                resolved, deadline = entry
                if time.monotonic() < deadline:
                    return resolved
                del self._entries[key]
        generation = self._generation
        try:
            resolved = await profiles.resolve(
                self._pool, self._vault, kind=kind, user_id=user_id, fallback=False
            )
        except Unavailable as exc:
            if isinstance(exc, EncryptionKeyMismatch):
                raise
            return profiles.unavailable_fallback(kind, exc)
        if self._listening and generation == self._generation and self._ttl > 0:
            if key not in self._entries and len(self._entries) >= MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]  # the oldest
            self._entries[key] = (resolved, time.monotonic() + self._ttl)
        return resolved

    def forget_scope(self, user_id: UUID | None) -> None:
        """After this process changed a profile of the user (None: the system's), so that its
        next resolve, here, does not wait for the notification to see it."""
        if user_id is None:
            self.forget_all()
        else:
            self.forget_user(user_id)

    def forget_user(self, user_id: UUID) -> None:
        self._generation += 1
        for key in [key for key in self._entries if key[1] == user_id]:
            del self._entries[key]

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        """A profile of scope ``payload`` changed (or "all": the table was truncated)."""
        try:
            scope = UUID(str(payload))
        except ValueError:
            scope = SYSTEM_SCOPE
        if scope == SYSTEM_SCOPE:
            self.forget_all()  # the system's profiles are every user's fallback
        else:
            self.forget_user(scope)

    def _distrust(self) -> None:
        self._listening = False
        self._vouched_until = 0.0
        self.forget_all()

    def _up(self, _conn: asyncpg.Connection[Any]) -> None:
        self.forget_all()  # anything may have changed while nobody listened
        self._listening = True
        self._vouched_until = time.monotonic() + self.trust_for

    def _checked(self, sent: float) -> None:
        self._vouched_until = sent + self.trust_for

    async def run(self) -> None:
        """Listen on ``mnemo_profiles`` until cancelled, reconnecting while the database is
        away (dal.usecases.listening); entries are kept and used only while listening."""
        if self._ttl <= 0:
            return
        await listening.listen(
            self._settings,
            name=LISTENER_NAME,
            channels={CHANNEL: self._heard},
            up=self._up,
            checked=self._checked,
            down=self._distrust,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Resolver]:
        """Run the listener while the block runs; cancelled (and awaited) on exit."""
        task = asyncio.create_task(self.run(), name=LISTENER_NAME)
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class KeyRotation(Cipher, Protocol):
    """What re-encrypts a secret (dal.vault.Vault): ``rotate`` gives the token under the first
    key, or None when the first key wrote it; EncryptionKeyMismatch when no key reads it."""

    def rotate(self, token: str) -> str | None: ...


@dataclass(slots=True)
class Rotation:
    """What ``rotate_secrets`` did, by profile: re-encrypted, already under the first key, or
    holding a secret no configured key decrypts (left as it is, by id)."""

    rotated: int = 0
    already_current: int = 0
    failed: list[UUID] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.rotated + self.already_current + len(self.failed)


async def rotate_secrets(
    pool: asyncpg.Pool[Any],
    vault: KeyRotation,
    *,
    batch: int = 100,
    on_batch: Callable[[Rotation], Awaitable[None] | None] | None = None,
) -> Rotation:
    """Re-encrypt every profile's secrets (every scope) with the first key, ``batch`` profiles
    at a time by id, each batch its own short transaction holding its rows (a concurrent
    update waits for it, or it for the update, never overwriting it). Resumable: what the
    first key wrote already is left alone. ``on_batch`` sees the running totals after each
    committed batch (an exception there stops the run; what was committed stays)."""
    if not 1 <= batch <= 10_000:
        raise ValueError("batch must be 1 to 10000")
    totals = Rotation()
    after = SYSTEM_SCOPE  # the nil UUID: below every id
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await profiles.list_profile_secrets_for_rotation(
                conn, after_id=after, limit=batch
            )
            changed: dict[UUID, dict[str, Any]] = {}
            for profile_id, secrets in rows:
                try:
                    rotated = {name: vault.rotate(s["ciphertext"]) for name, s in secrets.items()}
                except EncryptionKeyMismatch:
                    totals.failed.append(profile_id)
                    continue
                if all(token is None for token in rotated.values()):
                    totals.already_current += 1
                    continue
                changed[profile_id] = {
                    name: stored
                    if rotated[name] is None
                    else {**stored, "ciphertext": rotated[name]}
                    for name, stored in secrets.items()
                }
            await profiles.update_profile_secrets_rotated(conn, secrets=changed)
        totals.rotated += len(changed)
        if not rows:
            return totals
        after = rows[-1][0]
        if on_batch is not None:
            maybe = on_batch(totals)
            if maybe is not None:
                await maybe
