"""A fresh, migrated database for one benchmark run, dropped afterwards.

The server is DATABASE_URL's when it is set, else an embedded PostgreSQL in a temporary
directory (deleted at the end). These admin steps are synchronous (psycopg) and run before
and after the event loop.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from dal import embedded, migrate

_log = logging.getLogger(__name__)


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


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
        pg = embedded.server(Path(tmp) / "pg", delete_on_exit=True)
        try:
            yield str(pg.get_uri("postgres"))
        finally:
            pg.cleanup()


@contextmanager
def fresh_database(
    server_url: str, *, parameters: Mapping[str, str] = {}, migrated: bool = True
) -> Iterator[str]:
    """A new database on the server, with every Mnemo migration applied unless ``migrated``
    is False (an empty database, e.g. for LangGraph's own saver to set up); dropped on exit.

    ``parameters`` become the database's defaults (``ALTER DATABASE ... SET``), so every
    session of every pool opened on it afterwards gets them alike.
    """
    name = f"mnemo_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for key, value in parameters.items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(key), sql.Literal(value)
                )
            )
    try:
        url = with_database(server_url, name)
        if migrated:
            applied = migrate.apply(url)
            _log.info("database %s: %d migrations applied", name, len(applied))
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def server_info(url: str) -> dict[str, str]:
    """The server's version and the settings that weigh on a write benchmark, as a session on
    ``url`` sees them (a database can override them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('fsync'),"
            " current_setting('synchronous_commit'), current_setting('shared_buffers')"
        ).fetchone()
    assert row is not None
    keys = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
    return dict(zip(keys, (str(value) for value in row), strict=True))
