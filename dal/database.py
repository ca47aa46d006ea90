"""The asyncpg pool, per-connection set-up, and the helpers every gateway runs queries through.

Errors are translated into domain errors here and nowhere else (see ``dal.errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import asyncpg
import orjson
from asyncpg.transaction import Transaction

from dal.errors import DomainError, InvalidInput, Unavailable, translate
from dal.queries import Query
from dal.settings import Settings

Record = asyncpg.Record


class Executor(Protocol):
    """What gateways run queries on: a pool, a connection, or a pooled connection proxy."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any: ...

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...


class _NotJson(InvalidInput, asyncpg.InterfaceError):
    """A value the jsonb codec cannot write (nested over orjson's 254 levels, an integer beyond
    64 bits, a lone surrogate). asyncpg passes an InterfaceError on as it is, where it reports
    any other encoder error with repr() of the whole value, which raises RecursionError on a
    deep one; as an InvalidInput, translate() keeps it."""

    def __init__(self, message: str, *, detail: object = None, hint: object = None) -> None:
        super().__init__(message)  # asyncpg's with_msg() passes detail and hint


class _Lost(Unavailable, asyncpg.InterfaceError):
    """A connection used after it was lost or dropped, or a pool used while it closes: asyncpg
    raises a bare InterfaceError and says which only in its message, so Connection, its
    transactions and Pool (below) raise this type instead, which translate() keeps."""

    def __init__(self, message: str = "the database is unreachable") -> None:
        super().__init__(message)


def _lost_if_closed(conn: asyncpg.Connection[Any], exc: asyncpg.InterfaceError) -> None:
    """Raise _Lost for an InterfaceError of a connection that is closed (else return)."""
    if conn.is_closed() and not isinstance(exc, DomainError):
        raise _Lost() from exc


class _Transaction(Transaction):
    """A transaction whose connection was lost or dropped (e.g. its statement timed out, see
    Connection) is Unavailable when it begins or ends."""

    __slots__ = ("_owner",)

    def __init__(self, connection: asyncpg.Connection[Any], *options: Any) -> None:
        super().__init__(connection, *options)
        self._owner = connection

    async def __aenter__(self) -> None:
        try:
            await super().__aenter__()
        except asyncpg.InterfaceError as exc:
            _lost_if_closed(self._owner, exc)
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        except asyncpg.InterfaceError as exc:
            _lost_if_closed(self._owner, exc)
            raise


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise _NotJson(f"cannot be stored as JSON ({exc})") from None


async def init_connection(conn: asyncpg.Connection[Any]) -> None:
    """Per-connection set-up: json/jsonb as Python values (orjson both ways)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_dumps, decoder=orjson.loads)


async def keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release hook: do nothing more than asyncpg always does (roll back an open transaction).

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` on every release: a second round trip for every one-statement gateway call. No named
    query leaves session state behind (no SET, LISTEN, advisory lock, cursor, temp table;
    tests/test_session_state.py proves it), so there is nothing to reset. Code of your own
    that changes session state on a pooled connection must undo it (or use SET LOCAL).
    """


T = TypeVar("T")

if TYPE_CHECKING:
    _ConnectionBase = asyncpg.Connection[Record]
    _PoolBase = asyncpg.Pool[Record]
else:  # asyncpg's classes are generic only in its stubs
    _ConnectionBase = asyncpg.Connection
    _PoolBase = asyncpg.Pool


class Connection(_ConnectionBase):
    """An asyncpg connection that is dropped, not cancelled, when a command is interrupted.

    A command ends early when its client-side timeout (``command_timeout``: DB_QUERY_TIMEOUT
    plus DB_ANSWER_MARGIN) passes or its task is cancelled. asyncpg then sends the server a
    cancel request and keeps the connection for reuse once the server acknowledges it; a
    frozen server never does, and whoever touches the connection next (ROLLBACK, the pool's
    release) waits for that. Dropping the connection instead frees the caller at once; the pool
    opens a new one when it is needed. Covers execute, executemany and the fetch methods (what
    Mnemo and ``Connection.transaction()`` use).
    """

    async def _discard_if_interrupted(self, command: Awaitable[T]) -> T:
        try:
            return await command
        except (TimeoutError, asyncio.CancelledError):
            self.terminate()
            raise
        except asyncpg.InterfaceError as exc:
            _lost_if_closed(self, exc)
            raise

    def transaction(
        self, *, isolation: Any = None, readonly: bool = False, deferrable: bool = False
    ) -> Transaction:
        if self.is_closed():
            raise _Lost()
        return _Transaction(self, isolation, readonly, deferrable)

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        return await self._discard_if_interrupted(super().execute(query, *args, timeout=timeout))

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        await self._discard_if_interrupted(super().executemany(command, args, timeout=timeout))

    async def fetch(
        self, query: str, *args: object, timeout: float | None = None, record_class: Any = None
    ) -> list[Any]:
        return await self._discard_if_interrupted(
            super().fetch(query, *args, timeout=timeout, record_class=record_class)
        )

    async def fetchval(
        self, query: str, *args: object, column: int = 0, timeout: float | None = None
    ) -> Any:
        return await self._discard_if_interrupted(
            super().fetchval(query, *args, column=column, timeout=timeout)
        )

    async def fetchrow(
        self, query: str, *args: object, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        return await self._discard_if_interrupted(
            super().fetchrow(query, *args, timeout=timeout, record_class=record_class)
        )

    async def fetchmany(
        self, query: str, args: Any, *, timeout: float | None = None, record_class: Any = None
    ) -> list[Any]:
        return await self._discard_if_interrupted(
            super().fetchmany(query, args, timeout=timeout, record_class=record_class)
        )


class Pool(_PoolBase):
    """An asyncpg pool whose ``acquire()`` waits at most DB_CONNECTION_TIMEOUT by default.

    asyncpg's own default is to wait forever for a free connection (its ``fetch*`` and
    ``execute`` shortcuts included). The wait covers taking a free connection and opening a new
    one; it also bounds the release of the connection.
    """

    __slots__ = ("_acquire_timeout",)

    def __init__(
        self, *args: Any, acquire_timeout: float | None, lazy: bool, min_size: int, **kwargs: Any
    ) -> None:
        # Lazy: no connection up front, asyncpg's maintenance task brings the pool to its floor
        # in the background (retrying while the server is away). Its constructor refuses an
        # init_size below min_size, so the floor is set after it.
        super().__init__(
            *args, min_size=0 if lazy else min_size, init_size=0 if lazy else None, **kwargs
        )
        self._minsize = min_size
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        if self.is_closing():
            raise _Lost()
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def _init(conn: asyncpg.Connection[Any]) -> None:
    """The pool's ``init`` hook: ``init_connection``, and a connection whose set-up did not
    finish is dropped at once (asyncpg would close it politely, waiting on a server that may
    not answer)."""
    try:
        await init_connection(conn)
    except BaseException:
        conn.terminate()
        raise


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the URL of the embedded server (started if need be)."""
    if settings.database_url:
        return settings.database_url
    from dal import embedded

    return embedded.url(settings.data_dir / "pg")


def answer_timeout(settings: Settings) -> float | None:
    """How long the client waits for any answer of the server: DB_QUERY_TIMEOUT (the server's
    own limit) plus DB_ANSWER_MARGIN; None when DB_QUERY_TIMEOUT is 0."""
    if not settings.db_query_timeout:
        return None
    return settings.db_query_timeout + settings.db_answer_margin


def pool_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``asyncpg.create_pool`` that follow from the settings."""
    return {
        "min_size": min(settings.db_min_connections, settings.db_max_connections),
        "max_size": settings.db_max_connections,
        # Connecting (asyncpg's connect timeout); waiting for a free one is Pool.acquire's.
        "timeout": settings.db_connection_timeout,
        "command_timeout": answer_timeout(settings),
        "statement_cache_size": settings.db_statement_cache_size,
        "server_settings": {
            "application_name": "mnemo",
            "statement_timeout": str(int(settings.db_query_timeout * 1000)),
        },
        "init": _init,
        "reset": keep_session,
        "connection_class": Connection,
    }


async def open_pool(settings: Settings | None = None, *, lazy: bool = False) -> asyncpg.Pool[Any]:
    """Open a pool on DATABASE_URL (or the embedded server).

    By default it connects DB_MIN_CONNECTIONS at once: Unavailable if the server is
    unreachable. ``lazy`` connects none up front (the pool fills in the background and on
    demand), so an app can start before its database and answer 503 until it is there.
    """
    settings = settings or Settings()
    url = await asyncio.to_thread(database_url, settings)
    options = pool_options(settings)
    pool = Pool(
        url,
        acquire_timeout=settings.db_connection_timeout,
        lazy=lazy,
        max_queries=50_000,  # asyncpg's defaults, which its Pool constructor does not fill in
        max_inactive_connection_lifetime=300.0,
        loop=None,
        record_class=asyncpg.Record,
        **options,
    )
    with translating():
        await pool
    return pool


@contextmanager
def translating() -> Iterator[None]:
    """Re-raise driver and server errors as domain errors; anything else untouched."""
    try:
        yield
    except Exception as exc:
        error = translate(exc)
        if error is None or error is exc:
            raise
        raise error from exc


@asynccontextmanager
async def connect(settings: Settings | None = None) -> AsyncIterator[asyncpg.Pool[Any]]:
    """``async with dal.connect() as db:`` a pool for the gateways, closed on exit."""
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def transaction(pool: asyncpg.Pool[Any]) -> AsyncIterator[Executor]:
    """One connection in one transaction; commits on success, rolls back on error."""
    with translating():
        async with pool.acquire() as conn, conn.transaction():
            yield conn


async def fetch_one(db: Executor, query: Query, *args: Any) -> Record | None:
    """``fetchrow`` of a named query, errors translated."""
    with translating():
        row: Record | None = await db.fetchrow(query.sql, *args)
    return row


async def fetch_all(db: Executor, query: Query, *args: Any) -> Sequence[Record]:
    """``fetch`` of a named query, errors translated."""
    with translating():
        rows: list[Record] = await db.fetch(query.sql, *args)
    return rows


async def fetch_value(db: Executor, query: Query, *args: Any) -> Any:
    """``fetchval`` of a named query, errors translated."""
    with translating():
        return await db.fetchval(query.sql, *args)
