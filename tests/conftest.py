"""Real PostgreSQL for every test, each test in its own database copied from a migrated template.

The server is, in order: TEST_DATABASE_URL or DATABASE_URL; testcontainers' PostgreSQL when a
Docker engine answers; else an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest

from dal import migrate
from dal.database import open_pool
from dal.settings import Settings

# Dropping databases "WITH (FORCE)" and copying them "STRATEGY FILE_COPY" needs PostgreSQL 15+,
# which DESIGN.md sets as the floor anyway.


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def admin_execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def _docker_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A maintenance-database URL of the PostgreSQL server the suite runs on."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    if _docker_answers():  # pragma: no cover - no Docker engine on the CI machine
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
        return
    from dal import embedded

    with tempfile.TemporaryDirectory(prefix="mnemo-test-pg-") as tmp:
        server = embedded.server(Path(tmp) / "pg", delete_on_exit=True)
        try:
            yield str(server.get_uri("postgres"))
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """A database with every migration applied, copied for each test."""
    name = f"mnemo_tpl_{secrets.token_hex(4)}"
    admin_execute(server_url, f'CREATE DATABASE "{name}"')
    try:
        migrate.apply(with_database(server_url, name))
        yield name
    finally:
        admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"mnemo_test_{secrets.token_hex(6)}"
    admin_execute(
        server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY'
    )
    try:
        yield with_database(server_url, name)
    finally:
        admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A fresh database with no migrations applied."""
    name = f"mnemo_empty_{secrets.token_hex(6)}"
    admin_execute(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        db_min_connections=1,
        db_max_connections=10,
        app_admin_token="test-admin-token",  # type: ignore[arg-type]
        data_dir=tmp_path,
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A pool on this test's database, set up exactly as the app's."""
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()
