"""What the app holds for its lifetime (the pool), opened and closed by the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import asyncpg
from starlette.applications import Starlette

from app import event_hub
from app.event_hub import EventHub
from app.identity import Identity, running
from app.token_cache import TokenCache, listening
from dal.database import open_pool
from dal.migrate import migration_ids
from dal.settings import Settings
from dal.usecases import retention
from dal.usecases.profiles import Resolver
from dal.usecases.retention import RetentionScheduler
from dal.vault import Vault

_log = logging.getLogger(__name__)


class UploadSlots:
    """How many uploads a process serves at once (APP_MAX_CONCURRENT_UPLOADS): one more is
    refused at once rather than queued, since a queued upload would hold its connection and
    its client's bytes all the same."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        self.taken -= 1


class AppState(TypedDict):
    pool: asyncpg.Pool[Any]
    settings: Settings
    # Who each token is, for a few seconds (app/token_cache.py).
    tokens: TokenCache
    # Every migration this code expects to find applied (/health compares).
    expected_migrations: tuple[str, ...]
    # Uploads served at once (APP_MAX_CONCURRENT_UPLOADS).
    uploads: UploadSlots
    # Live events for the streams (app/event_hub.py): one listener, fanned out.
    events: EventHub
    # Encrypts and decrypts profiles' secrets (MNEMO_ENCRYPTION_KEY or DATA_DIR/encryption-key).
    vault: Vault
    # Password sign-in (app/identity.py): the clock, the hasher, the access tokens' key.
    identity: Identity
    # What a profile kind resolves to, for a few seconds (dal/usecases/profiles.py).
    resolver: Resolver


def lifespan_for(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        # Lazy: the app starts even while its database is unreachable (a container platform
        # may start it first); requests answer 503 until the database answers.
        # First: a malformed MNEMO_ENCRYPTION_KEY stops the start, naming the setting.
        vault = Vault.from_settings(settings)
        identity = Identity.from_settings(settings)
        pool = await open_pool(settings, lazy=True)
        _log.info(
            "database pool open (%s..%s connections, connected on demand)",
            pool.get_min_size(),
            pool.get_max_size(),
        )
        # Retention (README "Retention"): every RETENTION_INTERVAL_SECONDS, in the one process
        # of those sharing the database that holds the runner's lock.
        policy = retention.policy_of(settings)
        scheduler = (
            RetentionScheduler(
                pool,
                policy,
                interval=settings.retention_interval_seconds,
                batch=settings.retention_batch,
                pause=settings.retention_pause_ratio,
                timeout=settings.db_connection_timeout,
            )
            if settings.retention_interval_seconds > 0 and policy.enabled
            else None
        )
        try:
            if scheduler is not None:
                scheduler.start()
            async with (
                listening(TokenCache(settings, pool)) as tokens,
                event_hub.listening(EventHub(settings, pool)) as events,
                running(identity),
                Resolver(settings, pool, vault).running() as resolver,
            ):
                yield AppState(
                    pool=pool,
                    settings=settings,
                    tokens=tokens,
                    expected_migrations=tuple(migration_ids()),
                    uploads=UploadSlots(settings.app_max_concurrent_uploads),
                    events=events,
                    vault=vault,
                    identity=identity,
                    resolver=resolver,
                )
        finally:
            if scheduler is not None:
                await scheduler.stop()
            # Politely, but a frozen database must not hold the app's exit: then drop them.
            try:
                async with asyncio.timeout(settings.db_connection_timeout):
                    await pool.close()
            except TimeoutError:
                pool.terminate()

    return lifespan
