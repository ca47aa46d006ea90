"""``mnemo backup``, ``mnemo restore``, and ``mnemo migrate`` (which backs up first).

Backups go to DATA_DIR/backups (README "Backups"). ``mnemo migrate`` and ``mnemo serve
--migrate`` take one before applying migrations to a database that holds Mnemo's tables, and
``mnemo migrate --rollback`` before stepping back; after each, only the newest APP_BACKUPS_KEEP
of Mnemo's backups there are kept. A fresh database, or one with nothing pending, costs no dump.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

from dal import backups, embedded, migrate
from dal.errors import Timeout, Unavailable
from dal.settings import Settings

# What a database that does not answer raises: yoyo's psycopg, or Mnemo's pool.
UNANSWERED = (psycopg.OperationalError, Unavailable, Timeout)


def backups_dir(settings: Settings) -> Path:
    return settings.data_dir / "backups"


def backup(settings: Settings, out: str | None) -> int:
    """``mnemo backup [--out FILE]``: prints the file written."""
    with embedded.held_database(settings) as url:
        try:
            state = backups.inspect(settings, url)
        except UNANSWERED as exc:
            return _unreachable(exc)
        if out is not None:
            target = Path(out)
            if target.is_dir():
                target = target / backups.backup_name(state.head)
        else:
            target = backups_dir(settings) / backups.backup_name(state.head)
        try:
            written = _dump(settings, url, state, target)
        except backups.BackupError as exc:
            print(f"mnemo: no backup: {exc}", file=sys.stderr)
            return 1
    print(written)
    return 0


def restore(settings: Settings, file: str, *, force: bool) -> int:
    """``mnemo restore FILE [--force]``: refuses a database holding Mnemo's tables unless
    ``force`` (then what the backup holds is dropped and restored; all in one transaction)."""
    path = Path(file)
    if not path.is_file():
        print(f"mnemo: no such file: {file}", file=sys.stderr)
        return 2
    with embedded.held_database(settings) as url:
        try:
            state = backups.inspect(settings, url)
        except UNANSWERED as exc:
            return _unreachable(exc)
        if state.tables and not force:
            print(
                f"mnemo: the database already holds {state.tables} tables (newest migration: "
                f"{state.head or 'none'}); restoring into it would mix two databases. Add "
                "--force to replace what the backup holds (take a `mnemo backup` first).",
                file=sys.stderr,
            )
            return 2
        try:
            backups.restore(
                url,
                path,
                server_major=state.server_major,
                # Always: without Mnemo's tables, what it drops is at most yoyo's bookkeeping
                # (which `mnemo yoyo list` makes on a fresh database), restored from the file.
                clean=True,
                timeout=settings.app_backup_timeout,
                connect_timeout=settings.db_connection_timeout,
            )
            after = backups.inspect(settings, url)
        except backups.NotABackup as exc:
            print(f"mnemo: {exc}", file=sys.stderr)
            return 2
        except backups.BackupError as exc:
            print(f"mnemo: nothing restored: {exc}", file=sys.stderr)
            return 1
        except UNANSWERED as exc:
            return _unreachable(exc)
    print(
        f"restored {path} (newest migration: {after.head or 'none'}); "
        "`mnemo migrate` applies what came after it"
    )
    return 0


def apply_migrations(settings: Settings, url: str, *, take_backup: bool = True) -> int:
    """``mnemo migrate`` and ``mnemo serve --migrate``: a backup first when migrations are
    pending on a database holding Mnemo's tables (unless ``take_backup`` is False)."""
    try:
        if take_backup and (status := _backup_if_pending(settings, url)) != 0:
            return status
        done = migrate.apply(url)
    except UNANSWERED as exc:  # unreachable, refused, wrong password...
        print(f"mnemo: cannot migrate: {exc}".rstrip(), file=sys.stderr)
        return 1
    print(migrate.applied_message(done), flush=True)
    return 0


def roll_back(settings: Settings, url: str, *, yes: bool, take_backup: bool = True) -> int:
    """``mnemo migrate --rollback``: the newest applied migration, after a confirmation (a
    terminal's, or ``yes``) and a backup."""
    try:
        newest = migrate.applied(url)[:1]
        if not newest:
            print("rolled back: nothing (no migration is applied)")
            return 0
        if not yes:
            if not sys.stdin.isatty():
                print(
                    f"mnemo: rolling back {newest[0]} drops what it made; stdin is no "
                    "terminal to confirm it: add --yes.",
                    file=sys.stderr,
                )
                return 2
            answer = input(
                f"Roll back {newest[0]}? What it made (and the data in it) is dropped"
                f"{'; a backup is taken first' if take_backup else ''}. [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                print("rolled back: nothing")
                return 1
        if take_backup:
            state = backups.inspect(settings, url)
            if (status := _automatic_backup(settings, url, state)) != 0:
                return status
        done = migrate.rollback(url, count=1)
    except UNANSWERED as exc:
        print(f"mnemo: cannot roll back: {exc}".rstrip(), file=sys.stderr)
        return 1
    print(f"rolled back: {', '.join(done) or 'nothing'}", flush=True)
    return 0


def _backup_if_pending(settings: Settings, url: str) -> int:
    state = backups.inspect(settings, url)
    if not state.tables or not migrate.pending(url):
        return 0  # nothing to lose, or nothing will change
    return _automatic_backup(settings, url, state)


def _automatic_backup(settings: Settings, url: str, state: backups.DatabaseState) -> int:
    directory = backups_dir(settings)
    try:
        written = _dump(settings, url, state, directory / backups.backup_name(state.head))
    except backups.BackupError as exc:
        print(
            f"mnemo: no backup, so no change to the database: {exc}. "
            "(--no-backup goes ahead without one.)",
            file=sys.stderr,
        )
        return 1
    backups.prune(directory, settings.app_backups_keep)
    print(f"backup: {written}", flush=True)
    return 0


def _dump(settings: Settings, url: str, state: backups.DatabaseState, target: Path) -> Path:
    return backups.dump(
        url,
        target,
        state=state,
        timeout=settings.app_backup_timeout,
        connect_timeout=settings.db_connection_timeout,
    )


def _unreachable(exc: Exception) -> int:
    print(f"mnemo: the database did not answer: {exc}".rstrip(), file=sys.stderr)
    return 1
