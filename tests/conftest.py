"""Real PostgreSQL for every test, each test in its own database copied from a migrated template.

The server is, in order: TEST_DATABASE_URL or DATABASE_URL; testcontainers' PostgreSQL when a
Docker engine answers; else an embedded PostgreSQL in a temporary directory. A server of the
suite's own (container, embedded) runs with fsync, synchronous_commit and full_page_writes off:
nothing in it must survive a crash. On a given server only the databases the suite creates get
``synchronous_commit = off``; the server's own settings are left alone.

Copies of the template are made ahead, one at a time, by a thread beside the tests
(``Databases``), and dropped by it after the test: a test waits for neither.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dal import migrate
from dal.database import open_pool
from dal.settings import Settings
from tests.support import Databases, embedded_server

# Dropping databases "WITH (FORCE)" and copying them "STRATEGY FILE_COPY" needs PostgreSQL 15+,
# which DESIGN.md sets as the floor anyway.

# Settings for a throw-away server: durability off (a crash loses the server, not a result).
THROWAWAY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


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

        command = " ".join(f"-c {key}={value}" for key, value in THROWAWAY_SETTINGS.items())
        with PostgresContainer("postgres:18", driver=None).with_command(command) as container:
            yield container.get_connection_url()
        return
    with embedded_server(prefix="mnemo-test-pg-", settings=THROWAWAY_SETTINGS) as server:
        yield str(server.get_uri("postgres"))


@pytest.fixture(scope="session")
def databases(server_url: str) -> Iterator[Databases]:
    """Makes and drops the suite's databases (each with ``synchronous_commit = off``)."""
    with Databases(server_url, prefix="mnemo", settings={"synchronous_commit": "off"}) as made:
        yield made


@pytest.fixture(scope="session")
def template_db(databases: Databases) -> Iterator[str]:
    """A database with every migration applied, copied for each test; copies of it are made
    ahead from here on."""
    name = databases.create(label="tpl")
    try:
        migrate.apply(databases.url(name))
        databases.make_ahead(name)
        yield name
    finally:
        databases.drop(name)


@pytest.fixture
def database_url(databases: Databases, template_db: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    with databases.copy(template_db) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(databases: Databases, template_db: str) -> Iterator[str]:
    """A fresh, migrated database that the tests of one module share (read-only data, e.g.
    seeded once for the plan tests)."""
    with databases.copy(template_db) as url:
        yield url


@pytest.fixture
def empty_database_url(databases: Databases) -> Iterator[str]:
    """A fresh database with no migrations applied."""
    with databases.copy() as url:
        yield url


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
