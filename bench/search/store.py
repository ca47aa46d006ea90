"""Where the search benchmark's data sets live: built once per key, reused after.

Without DATABASE_URL the data sets live on an embedded server of the benchmark's own, in
``DATA_DIR/bench/pg`` (``.data/bench/pg``), which survives the run (stopped at its end, as
``make run``'s is): the next run finds each data set as a database named after its key and
skips the generation. A data set of another key (older generator or migrations) is dropped
when its scale is built again. With DATABASE_URL the data sets are built on that server and
dropped after the run, unless ``--search-keep`` is given.

A data set is built in a database named ``<name>_building`` and renamed once complete, so a
run cut short leaves nothing that looks finished.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg import sql

from bench._report import log
from bench.search import dataset
from dal import embedded, migrate
from dal.settings import Settings
from tests.support import with_database


@contextmanager
def server(database_url: str | None) -> Iterator[str]:
    """A maintenance URL: DATABASE_URL's, or the benchmark's own embedded server's."""
    if database_url:
        yield database_url
        return
    pgdata = Settings().data_dir / "bench" / "pg"
    log(f"search: embedded PostgreSQL in {pgdata} (kept: data sets are reused by the next run)")
    with embedded.held(pgdata) as url:
        yield url


def _execute(server_url: str, statement: sql.Composable, *args: Any) -> list[Any]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        cursor = conn.execute(statement, args or None)
        return cursor.fetchall() if cursor.description else []


def _drop(server_url: str, name: str) -> None:
    _execute(
        server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


async def ensure(
    server_url: str,
    scale: dataset.Scale,
    *,
    rebuild: bool,
    cached: bool,
    conversations: list[dataset.Conversation] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The URL of ``scale``'s data set (built now unless a finished one is there) and what
    its build took."""
    name = dataset.database_name(scale)
    found = _execute(
        server_url, sql.SQL("SELECT datname FROM pg_database WHERE datname = %s"), name
    )
    if found and not rebuild:
        url = with_database(server_url, name)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT info FROM bench_search_info").fetchone()
        info: dict[str, Any] = dict(row[0]) if row else {}
        log(f"search: {scale.label}: reusing database {name}")
        return url, {**info, "reused": True}
    if cached:  # older keys of this scale: nothing will use them again
        stale = _execute(
            server_url,
            sql.SQL("SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s"),
            f"{dataset.PREFIX}\\_{scale.name}\\_%",
            name,
        )
        for (old,) in stale:
            log(f"search: dropping {old} (another generator or migrations)")
            _drop(server_url, old)
    _drop(server_url, name)
    building = name + "_building"
    _drop(server_url, building)
    _execute(server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
    url = with_database(server_url, building)
    log(f"search: {scale.label}: generating into {building}")
    started = time.perf_counter()
    migrate.apply(url)
    info = await dataset.load(url, scale, conversations)
    info["seconds"]["migrate_s"] = round(
        time.perf_counter() - started - info["seconds"]["total_s"], 1
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_search_info (info jsonb NOT NULL)")
        conn.execute("INSERT INTO bench_search_info VALUES (%s)", [orjson.dumps(info).decode()])
    _execute(
        server_url,
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(building), sql.Identifier(name)
        ),
    )
    seconds = info["seconds"]
    log(
        f"search: {scale.label}: built in {seconds['total_s']:.0f} s "
        f"(generate {seconds['generate_s']:.0f} s, copy and insert {seconds['copy_s']:.0f} s, "
        f"indexes {seconds['indexes_s']:.0f} s, vacuum analyze {seconds['vacuum_analyze_s']:.0f} s)"
    )
    return with_database(server_url, name), {**info, "reused": False}


def drop(server_url: str, scale: dataset.Scale) -> None:
    _drop(server_url, dataset.database_name(scale))
