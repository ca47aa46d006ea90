"""What the app holds for its lifetime (the pool), opened and closed by the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import asyncpg
from starlette.applications import Starlette

from dal.database import open_pool
from dal.migrate import migration_ids
from dal.settings import Settings

_log = logging.getLogger(__name__)


class AppState(TypedDict):
    pool: asyncpg.Pool[Any]
    settings: Settings
    # Every migration this code expects to find applied (/health compares).
    expected_migrations: tuple[str, ...]


def lifespan_for(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        pool = await open_pool(settings)
        _log.info(
            "database pool open (%s..%s connections)", pool.get_min_size(), pool.get_max_size()
        )
        try:
            yield AppState(pool=pool, settings=settings, expected_migrations=tuple(migration_ids()))
        finally:
            await pool.close()

    return lifespan
