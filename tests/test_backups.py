"""Backups (README "Backups"): ``mnemo backup`` and ``mnemo restore`` round trip a populated
database; ``mnemo migrate`` backs up before pending migrations on a database with tables (and
keeps the newest APP_BACKUPS_KEEP), never otherwise; ``mnemo migrate --rollback``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app import backup_cli
from dal import backups, migrate
from dal.gateways import messages, tasks
from dal.records.messages import MessageDraft
from dal.records.tasks import TaskDraft
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
MNEMO = str(Path(sys.executable).parent / "mnemo")


def mnemo(*args: str, url: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script on the database at ``url``, DATA_DIR ``data_dir``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    return subprocess.run(
        [MNEMO, *args],
        cwd=ROOT,
        env={**clean, "DATABASE_URL": url, "DATA_DIR": str(data_dir), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def row_counts(url: str) -> dict[str, int]:
    """Rows of every table of the public schema (Mnemo's and yoyo's)."""
    with psycopg.connect(url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # type: ignore[index]
            for name in names
        }


def scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def made_backups(data_dir: Path) -> list[Path]:
    directory = data_dir / "backups"
    return sorted(directory.glob("mnemo-*.dump")) if directory.is_dir() else []


@pytest.fixture
async def populated(pool: Any) -> None:
    """The test's database with a user, a conversation of 5 messages, a task, their events."""
    alice = await make_user(pool, "alice")
    chat = await make_conversation(pool, alice, "the plan")
    for n in range(5):
        draft = MessageDraft.model_validate(
            {"role": "user", "parts": [{"type": "text", "text": f"step {n}: été ✓"}]}
        )
        await messages.insert_message(pool, user_id=alice.id, conversation_id=chat.id, draft=draft)
    await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="summarize", title="sum"))


@pytest.mark.usefixtures("populated")
def test_backup_then_restore_gives_back_the_same_data(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    before = row_counts(database_url)
    assert before["users"] == 1 and before["messages"] == 5 and before["tasks"] == 1
    assert before["conversation_events"] > 0 and before["task_events"] > 0

    done = mnemo("backup", url=database_url, data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    file = Path(done.stdout.strip())
    assert file.parent == tmp_path / "backups" and file.is_file()
    assert file.name.endswith(f"-{migrate.migration_ids()[-1]}.dump")
    assert file.stat().st_mode & 0o077 == 0  # it holds everything: its owner's only

    # yoyo's bookkeeping tables, without migrations (as `mnemo yoyo list` leaves a new
    # database), are no obstacle.
    assert len(migrate.pending(empty_database_url)) == len(migrate.migration_ids())
    restored = mnemo("restore", str(file), url=empty_database_url, data_dir=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert row_counts(empty_database_url) == before
    for sql in (
        "SELECT username FROM users",
        "SELECT title FROM conversations",
        "SELECT string_agg(parts::text, '|' ORDER BY seq) FROM messages",
        "SELECT title || ':' || kind || ':' || status FROM tasks",
        "SELECT max(migration_id) FROM _yoyo_migration",
    ):
        assert scalar(empty_database_url, sql) == scalar(database_url, sql), sql
    assert "step 4: été ✓" in scalar(
        empty_database_url, "SELECT parts::text FROM messages ORDER BY seq DESC LIMIT 1"
    )

    # The database holds Mnemo's tables now: a second restore refuses, unless --force,
    # which replaces rather than adds.
    again = mnemo("restore", str(file), url=empty_database_url, data_dir=tmp_path)
    assert again.returncode == 2
    assert "already holds" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    forced = mnemo("restore", "--force", str(file), url=empty_database_url, data_dir=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert row_counts(empty_database_url) == before
    # ... and the restored database migrates and serves as it is.
    assert migrate.pending(empty_database_url) == []


def test_backup_out_writes_where_asked(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "mine.dump"
    out.parent.mkdir()
    done = mnemo("backup", "--out", str(out), url=database_url, data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and out.is_file()
    assert made_backups(tmp_path) == []
    assert [p.name for p in out.parent.iterdir()] == ["mine.dump"]  # no partial file left


def test_restore_of_a_bad_or_missing_file_says_so_without_a_traceback(
    empty_database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.dump"
    bad.write_text("not a dump at all\n")
    done = mnemo("restore", str(bad), url=empty_database_url, data_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("mnemo: ") and "not a backup" in done.stderr
    assert "Traceback" not in done.stderr
    missing = mnemo(
        "restore", str(tmp_path / "nope.dump"), url=empty_database_url, data_dir=tmp_path
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert (
        scalar(empty_database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        == 0
    )


def test_backup_of_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    done = mnemo("backup", url="postgresql://mnemo@127.0.0.1:1/mnemo", data_dir=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("mnemo: the database did not answer")
    assert "Traceback" not in done.stderr


def test_migrate_backs_up_when_migrations_are_pending_and_keeps_the_newest(
    database_url: str, tmp_path: Path
) -> None:
    newest = migrate.migration_ids()[-1]
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "notes.txt").write_text("not Mnemo's")  # never pruned
    made: list[str] = []
    for _ in range(3):
        assert migrate.rollback(database_url, count=1) == [newest]
        done = mnemo("migrate", url=database_url, data_dir=tmp_path, APP_BACKUPS_KEEP="2")
        assert done.returncode == 0, done.stderr
        assert "migrations applied: 1" in done.stdout
        made.append(done.stdout.split("backup: ", 1)[1].splitlines()[0])
    kept = made_backups(tmp_path)
    assert [str(p) for p in kept] == made[1:]
    assert all(p.name.endswith(".dump") and newest not in p.name for p in kept)  # before it
    assert (tmp_path / "backups" / "notes.txt").exists()


def test_migrate_takes_no_backup_with_nothing_pending_on_a_fresh_database_or_when_told(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    up_to_date = mnemo("migrate", url=database_url, data_dir=tmp_path)
    assert up_to_date.returncode == 0 and "already up to date" in up_to_date.stdout
    fresh = mnemo("migrate", url=empty_database_url, data_dir=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert f"migrations applied: {len(migrate.migration_ids())}" in fresh.stdout
    migrate.rollback(database_url, count=1)
    told = mnemo("migrate", "--no-backup", url=database_url, data_dir=tmp_path)
    assert told.returncode == 0 and "migrations applied: 1" in told.stdout
    assert "backup" not in up_to_date.stdout + fresh.stdout + told.stdout
    assert made_backups(tmp_path) == []


def test_migrate_rollback_steps_back_one_after_a_backup_and_migrate_applies_it_again(
    database_url: str, tmp_path: Path
) -> None:
    newest = migrate.migration_ids()[-1]
    refused = mnemo("migrate", "--rollback", url=database_url, data_dir=tmp_path)
    assert refused.returncode == 2 and "--yes" in refused.stderr  # no terminal to ask on
    assert migrate.pending(database_url) == [] and made_backups(tmp_path) == []

    done = mnemo("migrate", "--rollback", "--yes", url=database_url, data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"rolled back: {newest}" in done.stdout
    assert migrate.pending(database_url) == [newest]
    [before] = made_backups(tmp_path)
    assert before.name.endswith(f"-{newest}.dump")  # the database as it was

    again = mnemo("migrate", url=database_url, data_dir=tmp_path)
    assert again.returncode == 0 and "migrations applied: 1" in again.stdout
    assert migrate.pending(database_url) == []


class Terminal(io.StringIO):
    """A stdin that is a terminal, the user's answers typed ahead."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "rolled_back"), [("n\n", False), ("y\n", True)])
def test_migrate_rollback_on_a_terminal_asks_first(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: str,
    rolled_back: bool,
) -> None:
    newest = migrate.migration_ids()[-1]
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    status = backup_cli.roll_back(settings, database_url, yes=False)
    out = capsys.readouterr().out
    assert f"Roll back {newest}?" in out
    assert status == (0 if rolled_back else 1)
    assert migrate.pending(database_url) == ([newest] if rolled_back else [])
    assert len(made_backups(tmp_path)) == (1 if rolled_back else 0)


def test_serve_migrate_backs_up_before_pending_migrations_too(
    database_url: str, tmp_path: Path
) -> None:
    newest = migrate.migration_ids()[-1]
    migrate.rollback(database_url, count=1)
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [MNEMO, "serve", "--migrate"],
            cwd=ROOT,
            env={
                **clean,
                "DATABASE_URL": database_url,
                "DATA_DIR": str(tmp_path),
                "APP_PORT": str(port),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # /health answers 503 while a migration is pending: 200 once serve has migrated.
        wait_until(lambda: healthy(port) or process.poll() is not None, what="serve")
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [made] = made_backups(tmp_path)
    assert newest not in made.name
    text = log.read_text()
    assert f"backup: {made}" in text and "migrations applied: 1" in text, text


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_missing_tool_names_what_to_install() -> None:
    with pytest.raises(backups.BackupError, match="postgresql-client-99"):
        backups.find_tool("pg_dump", 99)
    found = backups.find_tool("pg_dump", 15)  # the PATH's, or the embedded wheel's
    assert (backups.tool_major(found) or 0) >= 15


def test_the_password_goes_in_the_environment_not_on_the_command_line() -> None:
    url, env = backups.tool_environment(
        "postgresql://mnemo:s%40cret@db:5432/mnemo?sslmode=require", 5
    )
    assert url == "postgresql://mnemo@db:5432/mnemo?sslmode=require"
    assert env["PGPASSWORD"] == "s@cret"
    url, env = backups.tool_environment("postgresql://mnemo@db/mnemo", 5)
    assert url == "postgresql://mnemo@db/mnemo" and env.get("PGPASSWORD") == os.environ.get(
        "PGPASSWORD"
    )
