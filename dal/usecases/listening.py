"""A process's cache invalidated by NOTIFY: the listener connection they share the shape of
(app/token_cache.py on ``mnemo_auth``, dal.usecases.profiles.Resolver on ``mnemo_profiles``).

``listen`` keeps one connection outside the pool LISTENing on some channels for as long as it
runs, and proves it alive every CHECK_EVERY seconds: a check's answer comes after every
notification committed before it was sent (PostgreSQL delivers them before reading the next
command, and asyncpg runs their callbacks before the awaiting task resumes), so once it
answers, the cache has applied them all and may be trusted until ``trust_for(settings)`` after
the check was sent. While the connection is down (the database unreachable, frozen, or the
connection cut), the cache is told (``down``) and must not use its entries; ``listen``
reconnects with a growing wait, and a new connection starts with a forgotten cache (``up``):
nothing heard while nobody listened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from dal.database import database_url
from dal.gateways import meta
from dal.settings import Settings

_log = logging.getLogger(__name__)

# How often the listener proves its connection alive (and how long its check may take:
# APP_HEALTH_TIMEOUT).
CHECK_EVERY = 2.0
# Reconnecting: the first wait, doubled up to the last.
RETRY_FIRST, RETRY_MOST = 0.2, 5.0

# asyncpg's notification callback: (connection, sender's pid, channel, payload).
Heard = Callable[[Any, int, str, object], None]


def trust_for(settings: Settings) -> float:
    """How long a passed check vouches for a cache: the next check is sent CHECK_EVERY after
    one answered (within APP_HEALTH_TIMEOUT) and answers within as long; as much again for a
    loaded machine's late timers, lest entries lapse between checks."""
    return 2 * (CHECK_EVERY + settings.app_health_timeout)


async def listen(
    settings: Settings,
    *,
    name: str,
    channels: dict[str, Heard],
    up: Callable[[asyncpg.Connection[Any]], None],
    checked: Callable[[float], None],
    down: Callable[[], None],
    lock: asyncio.Lock | None = None,
) -> None:
    """Listen on ``channels`` until cancelled, on a connection named ``name``
    (application_name): ``up(conn)`` once listening, ``checked(sent)`` after each check that
    answered (``sent``: time.monotonic() when it was sent), ``down()`` whenever the connection
    is lost (then it reconnects). ``lock`` serializes the checks with the caller's own
    commands on the connection."""
    retry = RETRY_FIRST
    listening = False
    while True:
        conn: asyncpg.Connection[Any] | None = None
        try:
            url = await asyncio.to_thread(database_url, settings)
            conn = await asyncpg.connect(
                url,
                timeout=settings.db_connection_timeout,
                server_settings={"application_name": name},
            )
            conn.add_termination_listener(lambda _conn: down())
            async with asyncio.timeout(settings.db_connection_timeout):
                for channel, callback in channels.items():
                    await conn.add_listener(channel, callback)
            up(conn)
            listening = True
            retry = RETRY_FIRST
            while not conn.is_closed():
                await asyncio.sleep(CHECK_EVERY)
                sent = time.monotonic()
                async with lock or asyncio.Lock(), asyncio.timeout(settings.app_health_timeout):
                    await meta.ping(conn)
                checked(sent)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if listening:
                _log.warning("%s lost, reconnecting (its cache unused meanwhile): %r", name, exc)
        finally:
            listening = False
            down()
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(retry)
        retry = min(retry * 2, RETRY_MOST)
