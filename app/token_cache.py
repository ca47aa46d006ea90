"""Authentication without a round trip: token -> user, kept a few seconds in each app process.

Every request of a user's endpoint must know its caller; asking the database each time costs
a round trip on top of the work, twice the round trips of a one-statement route. A
``TokenCache`` remembers, by token hash, the user a token authenticated for at most
APP_AUTH_CACHE_SECONDS (and never past the token's expiry, measured by the database's clock),
and forgets an entry as soon as anything could have made it wrong:

* a change to ``api_tokens`` or ``users`` anywhere (this process, another app process, the
  CLI, psql) fires a trigger (migration 20261206_01) that NOTIFYs channel ``mnemo_auth`` at
  commit; a listener connection per process hears it and drops the user's entries. A route
  that makes such a change (``changing``) drops them here, then sends a marker of its own
  (``sync:<unique id>``) on the same channel and answers only once every listening process
  has said it applied the marker: notifications arrive in commit order, so each of them had
  applied the change, and the client's next request, to any process, finds it applied. A
  change made outside the app (psql, a script) takes effect when the notification arrives,
  normally within a millisecond;
* a lookup that was running while anything was forgotten stores nothing (its answer may
  predate the change);
* the cache is trusted only while its listener is connected and a check sent less than
  ``trust_for`` seconds ago has answered (a check's answer comes after every notification
  committed before it was sent, so that process had applied them all): until the listener is
  (re)connected, and while the database is unreachable or frozen or the process itself too
  slow to check, every request asks the database, as without a cache. A route whose marker
  is not answered by every process in time (a process stalled, a listener cut off) answers
  only once ``trust_for`` has passed since its change: by then any process that did not apply
  it has stopped trusting its entries.

Only successful lookups are kept (an unknown token asks the database every time), and at most
``MAX_ENTRIES``, the oldest dropped first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from dal.gateways import meta
from dal.records.users import TokenHolder, User
from dal.settings import Settings
from dal.usecases import listening as listener

_log = logging.getLogger(__name__)

CHANNEL = "mnemo_auth"
# Where each process says it applied a notification of CHANNEL: "<sender pid>:<payload>".
APPLIED_CHANNEL = "mnemo_auth_applied"
# The listeners' application_name (queries/meta.sql count_auth_listeners counts them by it).
LISTENER_NAME = "mnemo-auth-listener"
# "Applied" answers kept to match waiters: pruned past this many, of those older than...
MAX_HEARD, HEARD_KEPT = 1_000, 10.0
MAX_ENTRIES = 10_000
# How often the listener proves its connection alive (dal.usecases.listening).
CHECK_EVERY = listener.CHECK_EVERY
# Added to ``trust_for`` by a route's wait that times out (clocks of two processes, rounding).
WAIT_MARGIN = 0.25

# Asks the database who the token is (``users.get_user_by_token``).
Lookup = Callable[[], Awaitable[TokenHolder]]


class TokenCache:
    """token hash -> (user, deadline); ``run()`` is the listener, a task of the app's life."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool[Any]) -> None:
        self._settings = settings
        self._pool = pool
        self._ttl = settings.app_auth_cache_seconds
        self._entries: dict[bytes, tuple[User, float]] = {}
        self._of_user: dict[UUID, set[bytes]] = {}
        # Bumped whenever anything is forgotten: a lookup started before stores nothing.
        self._generation = 0
        # The listener is connected and listening (lookups may be stored) ...
        self._listening = False
        # ... and entries may be used until then (time.monotonic()): every notification
        # committed before the last check was sent has been applied.
        self._vouched_until = 0.0
        # How long a passed check vouches for the entries (dal.usecases.listening).
        self.trust_for = listener.trust_for(settings)
        # Markers of this process waiting to be heard by its listener (``changing``), by
        # payload; each learns the pid of the backend that sent it.
        self._waiting: dict[str, set[asyncio.Future[int]]] = {}
        # Which listeners (their backends' pids) said they applied a notification, by
        # "<sender pid>:<payload>", with when it was first heard; and who waits for more.
        self._heard_by: dict[str, tuple[float, set[int]]] = {}
        self._heard_waiting: dict[str, set[asyncio.Future[None]]] = {}
        # The listener's connection while it is up, one command at a time on it.
        self._conn: asyncpg.Connection[Any] | None = None
        self._conn_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def trusted(self) -> bool:
        """Whether entries are used now (the listener is connected and passed a recent check)."""
        return self._listening and time.monotonic() < self._vouched_until

    async def user(self, token_hash: bytes, lookup: Lookup) -> User:
        """The user of the token with this hash (``users.hash_token``): from the cache when
        trusted and fresh, else by ``lookup`` (whose NotFound goes to the caller, and whose
        answer is kept if nothing changed meanwhile)."""
        # No wait before an entry is used: a change made by a route is answered only once
        # every process applied it, or once no process that did not can still use an entry
        # (``changing``), so its next request cannot race it here.
        if self._listening and time.monotonic() < self._vouched_until:
            entry = self._entries.get(token_hash)
            if entry is not None:
                user, deadline = entry
                if time.monotonic() < deadline:
                    return user
                self._drop(token_hash)
        generation = self._generation
        holder = await lookup()
        if self._listening and generation == self._generation and self._ttl > 0:
            expires_in = holder.expires_in
            lifetime = self._ttl if expires_in is None else min(self._ttl, expires_in)
            self._store(token_hash, holder.user, time.monotonic() + lifetime)
        return holder.user

    @contextlib.asynccontextmanager
    async def changing(self, user_id: UUID) -> AsyncIterator[None]:
        """Around this process's change to a user or their tokens: when the block succeeds,
        their entries are dropped here, and the answer waits until every app process listening
        on this database has applied the change, so that the client's next request, to any of
        them, finds it applied. The wait is bounded: past ``trust_for`` (and a margin) after
        the change, a process that has not applied it no longer uses its entries."""
        yield
        self.forget_user(user_id)
        if self._ttl <= 0:
            return  # this process neither listens nor caches
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.trust_for + WAIT_MARGIN
        # A marker sent after the change's commit: every listener receives the change's
        # notification before it, and says it applied the marker once it applied both.
        marker = f"sync:{uuid.uuid4()}"
        heard: asyncio.Future[int] = loop.create_future()
        self._waiting[marker] = {heard}
        try:
            async with asyncio.timeout_at(deadline):
                listeners = await meta.count_auth_listeners(self._pool)
                if listeners == 0:
                    return  # no process uses entries now (a listener connecting starts empty)
                if self._listening:  # else this process cannot hear their answers
                    await meta.notify_auth_sync(self._pool, key=marker)
                    sender = await heard
                    await self._heard_everywhere(f"{sender}:{marker}", listeners)
                    return
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        finally:
            self._waiting.pop(marker, None)
        # Not known to be applied everywhere: wait until no process that may not have applied
        # it uses its entries any more (its last passed check is older than the change).
        _log.warning(
            "a change to user %s is not known to be applied everywhere: answering in %.1f s",
            user_id,
            max(0.0, deadline - loop.time()),
        )
        await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def _heard_everywhere(self, key: str, listeners: int) -> None:
        """Return once ``listeners`` listeners have said they applied ``key``."""
        while len(self._heard_by.get(key, (0.0, set()))[1]) < listeners:
            more = asyncio.get_running_loop().create_future()
            waiting = self._heard_waiting.setdefault(key, set())
            waiting.add(more)
            try:
                await more
            finally:
                waiting.discard(more)
                if not waiting and self._heard_waiting.get(key) is waiting:
                    del self._heard_waiting[key]

    def forget_user(self, user_id: UUID) -> None:
        self._generation += 1
        for token_hash in self._of_user.pop(user_id, set()):
            self._entries.pop(token_hash, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._of_user.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _store(self, token_hash: bytes, user: User, deadline: float) -> None:
        if token_hash not in self._entries and len(self._entries) >= MAX_ENTRIES:
            self._drop(next(iter(self._entries)))  # the oldest
        self._entries[token_hash] = (user, deadline)
        self._of_user.setdefault(user.id, set()).add(token_hash)

    def _drop(self, token_hash: bytes) -> None:
        entry = self._entries.pop(token_hash, None)
        if entry is not None:
            hashes = self._of_user.get(entry[0].id)
            if hashes is not None:
                hashes.discard(token_hash)
                if not hashes:
                    del self._of_user[entry[0].id]

    def _heard(self, _conn: Any, pid: int, _channel: str, payload: object) -> None:
        """A change to authentication (the triggers' NOTIFY, sent by backend ``pid``) or a
        route's marker after one (``changing``): forget what it touches, then say so to every
        process (``_applied``)."""
        text = str(payload)
        kind, _, key = text.partition(":")
        try:
            user_id = UUID(key) if kind == "user" else None
        except ValueError:
            user_id = None
        if kind == "sync":
            pass  # a marker: the change it follows was applied when it arrived
        elif user_id is None:  # "all", or a payload this code does not know
            self.forget_all()
        else:
            self.forget_user(user_id)
        for future in self._waiting.get(text, ()):
            if not future.done():
                future.set_result(pid)
        task = asyncio.get_running_loop().create_task(self._say_applied(f"{pid}:{text}"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _say_applied(self, key: str) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            async with self._conn_lock, asyncio.timeout(self._settings.app_health_timeout):
                await meta.notify_auth_applied(conn, key=key)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the listener's next check finds what is wrong with its connection

    def _applied(self, _conn: Any, pid: int, _channel: str, payload: object) -> None:
        """A listener (backend ``pid``) applied the notification ``payload`` names."""
        key = str(payload)
        now = time.monotonic()
        if len(self._heard_by) > MAX_HEARD:
            self._heard_by = {k: v for k, v in self._heard_by.items() if now - v[0] < HEARD_KEPT}
        self._heard_by.setdefault(key, (now, set()))[1].add(pid)
        for future in self._heard_waiting.get(key, ()):
            if not future.done():
                future.set_result(None)

    def _distrust(self) -> None:
        self._listening = False
        self._vouched_until = 0.0
        self.forget_all()

    def _up(self, conn: asyncpg.Connection[Any]) -> None:
        self.forget_all()  # anything may have changed while nobody listened
        self._conn = conn
        self._listening = True
        self._vouched_until = time.monotonic() + self.trust_for
        _log.info("authentication cache listening (entries kept %ss)", self._ttl)

    def _checked(self, sent: float) -> None:
        self._vouched_until = sent + self.trust_for

    def _down(self) -> None:
        self._conn = None
        self._distrust()

    async def run(self) -> None:
        """Listen on ``mnemo_auth`` for the app's lifetime, reconnecting while the database
        is away (dal.usecases.listening); entries are trusted only while listening. Cancel it
        to stop."""
        if self._ttl <= 0:
            return
        await listener.listen(
            self._settings,
            name=LISTENER_NAME,
            channels={APPLIED_CHANNEL: self._applied, CHANNEL: self._heard},
            up=self._up,
            checked=self._checked,
            down=self._down,
            lock=self._conn_lock,
        )


@contextlib.asynccontextmanager
async def listening(cache: TokenCache) -> Any:
    """Run the cache's listener while the block runs; cancelled (and awaited) on exit."""
    task = asyncio.create_task(cache.run(), name="mnemo-auth-listener")
    try:
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
