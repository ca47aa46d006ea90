"""yoyo migrations: apply, roll back, apply again; concurrent runs; the yoyo CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from dal import migrate

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"users", "api_tokens", "conversations", "messages"}


def schema_objects(url: str) -> tuple[set[str], set[str], list[str]]:
    """(tables, functions, applied migration ids) of the public schema."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        functions = {
            r[0]
            for r in conn.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
            )
        }
        applied: list[str] = []
        if "_yoyo_migration" in tables:
            applied = [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration")]
    return tables, functions, sorted(applied)


def test_migration_files_each_have_a_rollback_and_a_depends_line() -> None:
    ids = migrate.migration_ids()
    assert len(ids) >= 2
    for id_ in ids:
        text = (migrate.MIGRATIONS_DIR / f"{id_}.sql").read_text()
        assert "-- depends:" in text, id_
        assert (migrate.MIGRATIONS_DIR / f"{id_}.rollback.sql").exists(), id_


def test_apply_rollback_apply_round_trip(empty_database_url: str) -> None:
    url = empty_database_url
    assert migrate.apply(url) == migrate.migration_ids()
    tables, functions, applied = schema_objects(url)
    assert TABLES <= tables and "mnemo_parts_text" in functions
    assert applied == migrate.migration_ids()

    rolled_back = migrate.rollback(url)
    assert sorted(rolled_back) == migrate.migration_ids()
    tables, functions, applied = schema_objects(url)
    assert tables & TABLES == set() and "mnemo_parts_text" not in functions
    assert applied == []

    assert migrate.apply(url) == migrate.migration_ids()
    assert migrate.apply(url) == []  # idempotent
    tables, _, applied = schema_objects(url)
    assert TABLES <= tables and applied == migrate.migration_ids()


def test_apply_from_two_processes_at_once_applies_each_migration_once(
    empty_database_url: str,
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: migrate.apply(empty_database_url), range(2)))
    # One run applied everything under the lock; the other then found nothing to do.
    assert sorted(results, key=len) == [[], migrate.migration_ids()]
    assert schema_objects(empty_database_url)[2] == migrate.migration_ids()


def test_yoyo_cli_apply_as_users_type_it_then_dal_migrate_finds_nothing(
    empty_database_url: str,
) -> None:
    yoyo = Path(sys.executable).parent / "yoyo"
    subprocess.run(
        [
            str(yoyo),
            "apply",
            "--batch",
            "--database",
            migrate.yoyo_url(empty_database_url),
            "migrations",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert schema_objects(empty_database_url)[2] == migrate.migration_ids()
    env = {**os.environ, "DATABASE_URL": empty_database_url}
    done = subprocess.run(
        [sys.executable, "-m", "dal.migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "already up to date" in done.stdout


def test_yoyo_url_selects_psycopg3_and_refuses_other_schemes() -> None:
    assert migrate.yoyo_url("postgresql://u:p@h:5432/d?sslmode=require") == (
        "postgresql+psycopg://u:p@h:5432/d?sslmode=require"
    )
    assert migrate.yoyo_url("postgres://u@h/d").startswith("postgresql+psycopg://")
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        migrate.yoyo_url("mysql://u@h/d")
