"""yoyo migrations: apply, roll back, apply again; concurrent runs; the yoyo CLI, which asks
before it rolls back; Python migrations noticed as pending like SQL ones."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from app import create_app
from dal import migrate
from dal.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# What the schema says about itself, read from the catalogs (no list of Mnemo's tables here):
# each kind of object of the public schema, one row per object: (the table or name it belongs
# to, what it is).
SCHEMA_CATALOG = {
    "tables": "SELECT tablename, tablename FROM pg_tables WHERE schemaname = 'public'",
    "columns": """
        SELECT table_name, table_name || '.' || column_name || ' ' || data_type || ' '
               || is_nullable || ' ' || coalesce(column_default, '')
          FROM information_schema.columns
         WHERE table_schema = 'public'
    """,
    "indexes": "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": """
        SELECT conrelid::regclass::text,
               conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace
    """,
    "functions": """
        SELECT proname, proname || '(' || pg_get_function_identity_arguments(oid) || ')'
          FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace
    """,
    "triggers": """
        SELECT tgrelid::regclass::text, pg_get_triggerdef(oid)
          FROM pg_trigger
         WHERE NOT tgisinternal AND tgrelid::regclass::text NOT LIKE 'pg_%'
    """,
    "views": "SELECT viewname, pg_get_viewdef(viewname::regclass) FROM pg_views"
    " WHERE schemaname = 'public'",
    "sequences": "SELECT sequencename, sequencename FROM pg_sequences WHERE schemaname = 'public'",
    "types": """
        SELECT typname, typname || ' ' || typtype::text FROM pg_type
         WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c', 'r', 'm')
           AND typrelid = 0
    """,
}


def is_yoyos(name: str) -> bool:
    """Whether a catalog row belongs to yoyo's own bookkeeping (_yoyo_migration, yoyo_lock...)."""
    return name.lstrip("_").startswith("yoyo")


def schema(url: str) -> dict[str, set[str]]:
    """Every object of the public schema by kind (SCHEMA_CATALOG), yoyo's own left out."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            kind: {str(row[1]) for row in conn.execute(query) if not is_yoyos(str(row[0]))}
            for kind, query in SCHEMA_CATALOG.items()
        }


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
        sql = migrate.MIGRATIONS_DIR / f"{id_}.sql"
        assert sql.exists(), f"{id_}: Mnemo's migrations are SQL files (yoyo new --sql)"
        text = sql.read_text()
        assert "-- depends:" in text, id_
        assert (migrate.MIGRATIONS_DIR / f"{id_}.rollback.sql").exists(), id_


def test_apply_rollback_apply_round_trip(empty_database_url: str) -> None:
    url = empty_database_url
    assert schema(url) == {kind: set() for kind in SCHEMA_CATALOG}  # the check can see nothing
    assert sorted(migrate.apply(url)) == migrate.migration_ids()  # applied in dependency order
    migrated = schema(url)
    # The migrations made a schema: tables with columns and keys, functions, indexes.
    assert all(migrated[kind] for kind in ("tables", "columns", "indexes", "constraints"))
    assert "mnemo_parts_text" in {f.split("(")[0] for f in migrated["functions"]}
    assert schema_objects(url)[2] == migrate.migration_ids()

    rolled_back = migrate.rollback(url)
    assert sorted(rolled_back) == migrate.migration_ids()
    # Every object any migration made is gone (only yoyo's bookkeeping is left).
    assert schema(url) == {kind: set() for kind in SCHEMA_CATALOG}
    assert schema_objects(url)[2] == []

    assert sorted(migrate.apply(url)) == migrate.migration_ids()
    assert migrate.apply(url) == []  # idempotent
    assert schema(url) == migrated  # the same schema, object for object
    assert schema_objects(url)[2] == migrate.migration_ids()


def test_the_migrated_template_has_the_schema_the_migrations_make(
    database_url: str, empty_database_url: str
) -> None:
    """The tests' databases (copies of the template) are what applying the migrations makes."""
    migrate.apply(empty_database_url)
    assert schema(database_url) == schema(empty_database_url)


def test_apply_from_two_processes_at_once_applies_each_migration_once(
    empty_database_url: str,
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: migrate.apply(empty_database_url), range(2)))
    # One run applied everything under the lock; the other then found nothing to do.
    assert [sorted(ids) for ids in sorted(results, key=len)] == [[], migrate.migration_ids()]
    assert schema_objects(empty_database_url)[2] == migrate.migration_ids()


# Two migrations whose file names sort against their dependency: "first" must run first.
INVERTED = {
    "20991231_01_a1a1a-needs-first": (
        "-- depends: 20991231_02_b2b2b-first\nALTER TABLE probe_first ADD COLUMN b int;\n",
        "ALTER TABLE probe_first DROP COLUMN b;\n",
    ),
    "20991231_02_b2b2b-first": (
        "-- depends: 20261123_03_k8t2w-create-threads-checkpoints\n"
        "CREATE TABLE probe_first (a int);\n",
        "DROP TABLE probe_first;\n",
    ),
}


def test_apply_follows_dependencies_even_if_migrations_are_read_again_meanwhile(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    for id_, (sql, rollback_sql) in INVERTED.items():
        (directory / f"{id_}.sql").write_text(sql)
        (directory / f"{id_}.rollback.sql").write_text(rollback_sql)
    from yoyo import get_backend, read_migrations

    holder = get_backend(migrate.yoyo_url(empty_database_url))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, ExitStack() as held:
            held.enter_context(holder.lock())
            # apply() reads its migrations, then waits for the lock; meanwhile the same
            # process reads them again (a second apply, yoyo itself...).
            # Once apply() has read them (a loaded machine may take seconds to get there):
            read_done = threading.Event()
            reading = migrate.read

            def read_and_say(directory: Path | None = None) -> Any:
                migrations = reading(directory)
                read_done.set()
                return migrations

            monkeypatch.setattr(migrate, "read", read_and_say)
            run = pool.submit(migrate.apply, empty_database_url, directory=directory)
            assert read_done.wait(timeout=120), "apply() never read its migrations"
            time.sleep(0.2)  # on its way to the lock
            read_migrations(str(directory))
            held.close()
            applied = run.result(timeout=120)
    finally:
        holder.connection.close()
    # yoyo resolves dependencies through one registry per process, which the second read
    # overwrote: the first list then sorted by file name and failed ("probe_first" missing).
    assert applied.index("20991231_02_b2b2b-first") < applied.index("20991231_01_a1a1a-needs-first")
    assert sorted(applied) == migrate.migration_ids(directory)


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


# What `yoyo new -m ...` writes without --sql: a Python migration.
PYTHON_MIGRATION_ID = "20991231_01_py7gn-python-migration"
PYTHON_MIGRATION = """from yoyo import step

__depends__ = {"20261123_03_k8t2w-create-threads-checkpoints"}

steps = [step("CREATE TABLE python_migration_probe (id int)", "DROP TABLE python_migration_probe")]
"""


@pytest.fixture
def migrations_with_python(tmp_path: Path) -> Path:
    """Mnemo's migrations plus one written in Python."""
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    (directory / f"{PYTHON_MIGRATION_ID}.py").write_text(PYTHON_MIGRATION)
    return directory


def test_migration_ids_count_python_migrations_too(migrations_with_python: Path) -> None:
    assert migrate.migration_ids(migrations_with_python) == sorted(
        [*migrate.migration_ids(), PYTHON_MIGRATION_ID]
    )


def test_health_reports_a_pending_python_migration_until_dal_migrate_applies_it(
    database_url: str,
    migrations_with_python: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations_with_python)
    settings = Settings(
        database_url=database_url,
        app_admin_token="admin",
        data_dir=tmp_path,
    )
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["pending_migrations"] == [PYTHON_MIGRATION_ID]

        assert migrate.apply(database_url) == [PYTHON_MIGRATION_ID]
        assert client.get("/health").json()["status"] == "ok"
    tables, _, _ = schema_objects(database_url)
    assert "python_migration_probe" in tables


def run_in_terminal(
    argv: list[str], env: dict[str, str], *, prompt: str, answer: str
) -> tuple[str, int]:
    """Run ``argv`` on a pseudo-terminal (yoyo asks only on one), type ``answer`` once
    ``prompt`` shows; returns (everything it printed, exit status)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = b""
    answered = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the terminal closed: the process ended
                    break
                output += chunk
            if not answered and prompt.encode() in output:
                os.write(leader, answer.encode())
                answered = True
            if process.poll() is not None and not ready:
                break
        return output.decode(errors="replace"), process.wait(timeout=30)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("through_mnemo", [False, True], ids=["yoyo", "mnemo-yoyo"])
def test_yoyo_rollback_asks_before_dropping_anything(
    database_url: str, through_mnemo: bool
) -> None:
    before = schema_objects(database_url)[2]
    bin_dir = Path(sys.executable).parent
    if through_mnemo:  # it finds the database itself (DATABASE_URL here)
        argv = [str(bin_dir / "mnemo"), "yoyo", "rollback"]
    else:  # as the README has it, from the project folder, so with yoyo.ini's settings
        argv = [str(bin_dir / "yoyo"), "rollback", "--database", migrate.yoyo_url(database_url)]
    env = {**os.environ, "DATABASE_URL": database_url}
    output, status = run_in_terminal(
        argv, env, prompt="Shall I rollback this migration?", answer="q"
    )
    assert "Shall I rollback this migration?" in output, output
    assert status == 0, output
    assert schema_objects(database_url)[2] == before  # "q": cancelled, nothing rolled back


# --- 20261202_01: thread ids scoped per owner --------------------------------------------

THREADS_BEFORE_OWNERS = "20261123_03_k8t2w-create-threads-checkpoints"


def test_threads_per_user_migration_gives_existing_rows_their_threads_owner(
    empty_database_url: str, tmp_path: Path
) -> None:
    # The schema as it was before thread ids were scoped, with rows of an owned thread, of a
    # thread nobody owns, and writes saved before any checkpoint (no thread row).
    before = tmp_path / "migrations"
    before.mkdir()
    for id_ in migrate.migration_ids():
        if id_ <= THREADS_BEFORE_OWNERS:
            for suffix in (".sql", ".rollback.sql"):
                shutil.copy(migrate.MIGRATIONS_DIR / f"{id_}{suffix}", before)
    migrate.apply(empty_database_url, directory=before)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        user_id = conn.execute(
            "INSERT INTO users (id, username) VALUES (gen_random_uuid(), 'alice') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO threads (thread_id, user_id) VALUES ('mine', %s), ('anon', NULL)",
            [user_id],
        )
        for thread_id in ("mine", "anon", "orphan"):
            if thread_id != "orphan":
                conn.execute(
                    "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint) "
                    "VALUES (%s, 'c1', '{}')",
                    [thread_id],
                )
                conn.execute(
                    "INSERT INTO checkpoint_blobs (thread_id, channel, version, type, blob) "
                    "VALUES (%s, 'n', '1', 'msgpack', '\\x00')",
                    [thread_id],
                )
            conn.execute(
                "INSERT INTO checkpoint_writes "
                "(thread_id, checkpoint_id, task_id, idx, channel, type, blob) "
                "VALUES (%s, 'c1', 't', 0, 'n', 'msgpack', '\\x00')",
                [thread_id],
            )

    migrate.apply(empty_database_url)

    nil = "00000000-0000-0000-0000-000000000000"
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for table in ("threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            owners = dict(
                conn.execute(f"SELECT thread_id, owner::text FROM {table}").fetchall()  # noqa: S608
            )
            expected = {"mine": str(user_id), "anon": nil, "orphan": nil}
            assert owners == {k: v for k, v in expected.items() if k in owners}, table
        # Deleting the user still deletes their thread's rows, and only those.
        conn.execute("DELETE FROM users WHERE id = %s", [user_id])
        left = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = 'mine'")
        assert left.fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)


def test_conversation_thread_link_migration_keeps_one_link_per_thread(
    empty_database_url: str, tmp_path: Path
) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for id_ in migrate.migration_ids():
        if id_ <= "20261202_01_t5s1p-threads-per-user":
            for suffix in (".sql", ".rollback.sql"):
                shutil.copy(migrate.MIGRATIONS_DIR / f"{id_}{suffix}", before)
    migrate.apply(empty_database_url, directory=before)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO users (id, username)
            VALUES ('0191a9f4-0000-7000-8000-00000000000a', 'alice');
            INSERT INTO conversations (id, user_id, thread_id, updated_at)
            SELECT ('0191a9f4-0000-7000-8000-0000000000' || n)::uuid,
                   '0191a9f4-0000-7000-8000-00000000000a', thread_id, now() - age * interval '1h'
              FROM (VALUES ('a1', NULL, 0), ('b1', 'x', 0), ('c1', 'x', 1), ('d1', NULL, 0))
                   AS v(n, thread_id, age);
            INSERT INTO threads (thread_id, owner, user_id, conversation_id, updated_at)
            SELECT t, '0191a9f4-0000-7000-8000-00000000000a',
                   '0191a9f4-0000-7000-8000-00000000000a',
                   ('0191a9f4-0000-7000-8000-0000000000' || c)::uuid, now() - age * interval '1h'
              FROM (VALUES ('a-old', 'a1', 2), ('a-new', 'a1', 1), ('b', 'b1', 0))
                   AS v(t, c, age);
            """
        )

    migrate.apply(empty_database_url)

    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        links = dict(
            conn.execute(
                "SELECT right(id::text, 2), thread_id FROM conversations ORDER BY 1"
            ).fetchall()
        )
        # a1 takes its newest thread; b1 keeps its own; c1 named b1's thread too (older): cleared.
        assert links == {"a1": "a-new", "b1": "x", "c1": None, "d1": None}
        # The thread's own link, which could disagree, is gone (dropped by 20261202_07).
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'threads'"
        ).fetchall()
        assert ("conversation_id",) not in columns
