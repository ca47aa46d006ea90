"""The server and the fresh, migrated databases of a benchmark run, dropped afterwards.

The server is DATABASE_URL's when it is set, else an embedded PostgreSQL in a temporary
directory (deleted at the end) with its default settings: unlike the test suite's throw-away
server it keeps fsync and synchronous_commit on, since commits are part of what the write
workloads measure. Starting the server and making and dropping databases is done by the
helpers the tests use (``tests/support.py``), so both do it one way. These admin steps are
synchronous (psycopg) and run before and after the event loop.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dal import migrate
from tests.support import Databases, embedded_server, server_settings

_log = logging.getLogger(__name__)


def describe(url: str) -> str:
    """Where ``url`` points, without its password."""
    parts = urlsplit(url)
    socket = parse_qs(parts.query).get("host")
    host = parts.hostname or (f"unix socket in {socket[0]}" if socket else "default host")
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port} database {parts.path.lstrip('/') or '(default)'}"


@contextmanager
def server(database_url: str | None) -> Iterator[str]:
    """A maintenance-database URL: ``database_url`` itself, or an embedded server's."""
    if database_url:
        yield database_url
        return
    with tempfile.TemporaryDirectory(prefix="mnemo-bench-pg-") as tmp:
        with embedded_server(Path(tmp) / "pg") as pg:
            yield str(pg.get_uri("postgres"))


@contextmanager
def fresh_database(
    server_url: str, *, parameters: Mapping[str, str] = {}, migrated: bool = True
) -> Iterator[str]:
    """A new database on the server, with every Mnemo migration applied unless ``migrated``
    is False (an empty database, e.g. for LangGraph's own saver to set up); dropped on exit.

    ``parameters`` become the database's defaults (``ALTER DATABASE ... SET``), so every
    session of every pool opened on it afterwards gets them alike.
    """
    with Databases(server_url, prefix="mnemo_bench", settings=parameters) as databases:
        name = databases.create()
        try:
            url = databases.url(name)
            if migrated:
                applied = migrate.apply(url)
                _log.info("database %s: %d migrations applied", name, len(applied))
            yield url
        finally:
            databases.drop(name)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def server_info(url: str) -> dict[str, str]:
    """The server's version and the settings that weigh on a write benchmark, as a session on
    ``url`` sees them (a database can override them)."""
    names = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
    return server_settings(url, *names)
