"""The asyncpg pool, per-connection set-up, and the helpers every gateway runs queries through.

Errors are translated into domain errors here and nowhere else (see ``dal.errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol

import asyncpg
import orjson

from dal.errors import translate
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


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


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


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the URL of the embedded server (started if need be)."""
    if settings.database_url:
        return settings.database_url
    from dal import embedded

    return embedded.url(settings.data_dir / "pg")


def pool_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``asyncpg.create_pool`` that follow from the settings."""
    return {
        "min_size": min(settings.db_min_connections, settings.db_max_connections),
        "max_size": settings.db_max_connections,
        "timeout": settings.db_connection_timeout,
        "statement_cache_size": settings.db_statement_cache_size,
        "server_settings": {
            "application_name": "mnemo",
            "statement_timeout": str(int(settings.db_query_timeout * 1000)),
        },
        "init": init_connection,
        "reset": keep_session,
    }


async def open_pool(settings: Settings | None = None) -> asyncpg.Pool[Any]:
    """Open a pool on DATABASE_URL (or the embedded server); Unavailable if unreachable."""
    settings = settings or Settings()
    url = await asyncio.to_thread(database_url, settings)
    with translating():
        pool: asyncpg.Pool[Any] = await asyncpg.create_pool(url, **pool_options(settings))
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
