"""``mnemo``, the command line (also ``python -m app``): help on every command without
starting anything; migrate, db-url, yoyo and users create on a real database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from app import create_app
from app.cli import main
from dal import embedded, migrate
from dal.settings import Settings
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
MNEMO = str(Path(sys.executable).parent / "mnemo")


def mnemo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed console script, with Mnemo's settings only from ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    return subprocess.run(
        [MNEMO, *args],
        cwd=ROOT,
        env={**clean, "DATABASE_URL": "", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def yoyo_list(stdout: str) -> dict[str, str]:
    """``yoyo list``'s table as {migration id: "A" (applied) or "U" (unapplied)}."""
    rows = [line.split() for line in stdout.splitlines()]
    return {row[1]: row[0] for row in rows if len(row) >= 2 and row[0] in ("A", "U")}


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_mnemo_is_installed_as_a_console_script() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "mnemo"]
    assert script.value == "app.cli:main"
    assert Path(MNEMO).exists()


def test_python_m_app_help_prints_the_commands_and_serves_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # it used to start the server, which never returns
    )
    assert done.returncode == 0, done.stderr
    for command in (
        "serve",
        "migrate",
        "db-url",
        "yoyo",
        "users",
        "export",
        "import",
        "attachments",
        "keys",
        "retention",
        "worker",
        "profiles",
    ):
        assert command in done.stdout
    assert "Uvicorn running" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["migrate"],
        ["backup"],
        ["restore"],
        ["db-url"],
        ["users"],
        ["users", "create"],
        ["users", "password"],
        ["users", "erase"],
        ["stats"],
        ["export"],
        ["import"],
        ["attachments"],
        ["attachments", "gc"],
        ["keys"],
        ["keys", "generate"],
        ["keys", "rotate"],
        ["retention"],
        ["retention", "run"],
        ["worker"],
        ["profiles"],
        ["profiles", "list"],
        ["profiles", "create"],
        ["profiles", "update"],
        ["profiles", "effective"],
    ],
    ids=" ".join,
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert f"usage: mnemo {' '.join(command)}" in capsys.readouterr().out


def test_mnemo_without_a_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: mnemo" in capsys.readouterr().out


def test_mnemo_yoyo_help_is_yoyos() -> None:
    done = mnemo("yoyo", "--help", env={})
    assert done.returncode == 0, done.stderr
    assert "rollback" in done.stdout and "usage: yoyo" in done.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_mnemo_serve_stops_gracefully_on_sigterm_or_a_closed_terminal(
    database_url: str, tmp_path: Path, signum: int
) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [MNEMO, "serve"],
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
        deadline = time.monotonic() + 60
        while not answers(f"http://127.0.0.1:{port}/health"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "Application shutdown complete" in text and "Traceback" not in text, text


def test_mnemo_migrate_applies_pending_migrations_once(empty_database_url: str) -> None:
    first = mnemo("migrate", env={"DATABASE_URL": empty_database_url})
    assert first.returncode == 0, first.stderr
    assert f"migrations applied: {len(migrate.migration_ids())}" in first.stdout
    again = mnemo("migrate", env={"DATABASE_URL": empty_database_url})
    assert "already up to date" in again.stdout


@pytest.mark.parametrize("command", [["migrate"], ["serve", "--migrate"]], ids=" ".join)
def test_mnemo_migrate_on_an_unreachable_database_says_so_in_one_line(command: list[str]) -> None:
    unreachable = "postgresql://mnemo@127.0.0.1:1/mnemo"  # port 1: refused at once
    done = mnemo(*command, env={"DATABASE_URL": unreachable})
    assert done.returncode == 1
    assert done.stderr.startswith("mnemo: cannot migrate: ") and "Traceback" not in done.stderr
    assert "Uvicorn running" not in done.stdout + done.stderr  # serve never started


def test_mnemo_users_create_on_an_unreachable_database_says_so_in_one_line() -> None:
    done = mnemo("users", "create", "erin", env={"DATABASE_URL": "postgresql://u@127.0.0.1:1/x"})
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("mnemo: the database did not answer") and "Traceback" not in (
        done.stderr
    )


def test_mnemo_users_create_prints_the_user_and_a_working_token(
    database_url: str, settings: Settings
) -> None:
    done = mnemo(
        "users", "create", "Carol", "--display-name", "Carol C.", env={"DATABASE_URL": database_url}
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["user"]["username"] == "carol"
    assert created["user"]["display_name"] == "Carol C."
    with TestClient(create_app(settings)) as client:
        me = client.get("/v1/me", headers={"Authorization": f"Bearer {created['token']}"})
        assert me.status_code == 200 and me.json()["id"] == created["user"]["id"]

    taken = mnemo("users", "create", "carol", env={"DATABASE_URL": database_url})
    assert taken.returncode == 1
    assert "taken" in taken.stderr and taken.stdout == ""


def _mnemo_fed(stdin: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``mnemo`` with ``stdin`` as its standard input (a pipe: no terminal)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    return subprocess.run(
        [MNEMO, *args],
        cwd=ROOT,
        env={**clean, "DATABASE_URL": "", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mnemo_users_password_sets_it_from_stdin_and_ends_the_sessions(
    database_url: str, settings: Settings
) -> None:
    env = {"DATABASE_URL": database_url, "APP_ARGON2_MEMORY_KIB": "64"}
    created = _mnemo_fed("first password\n", "users", "create", "dora", "--password-stdin", env=env)
    assert created.returncode == 0, created.stderr
    login = "/v1/auth/login"
    with TestClient(create_app(settings)) as client:
        first = client.post(login, json={"username": "dora", "password": "first password"})
        assert first.status_code == 200, first.text
        done = _mnemo_fed("second password\r\n", "users", "password", "Dora", env=env)
        assert done.returncode == 0, done.stderr
        assert "1 session(s) signed out" in done.stdout
        refresh = {"refresh_token": first.json()["refresh_token"]}
        assert client.post("/v1/auth/refresh", json=refresh).status_code == 401
        assert (
            client.post(login, json={"username": "dora", "password": "first password"}).status_code
            == 401
        )
        assert (
            client.post(login, json={"username": "dora", "password": "second password"}).status_code
            == 200
        )
        for refused, status, says in [
            ("short\n", 2, "at least 8 characters"),
            ("x" * 1025 + "\n", 2, "at most 1024 characters"),
            ("", 2, "at least 8 characters"),
        ]:
            done = _mnemo_fed(refused, "users", "password", "dora", env=env)
            assert done.returncode == status and says in done.stderr, done.stderr
        missing = _mnemo_fed("a fine password\n", "users", "password", "nobody", env=env)
        assert missing.returncode == 1 and "no user" in missing.stderr
        assert (
            client.post(login, json={"username": "dora", "password": "second password"}).status_code
            == 200
        )


def test_mnemo_users_create_refuses_a_bad_username_before_the_database(tmp_path: Path) -> None:
    done = mnemo("users", "create", "no spaces", env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "username" in done.stderr
    assert not (tmp_path / "pg").exists()  # no embedded server started for nothing


def test_mnemo_db_url_prints_database_url_or_yoyos_form(database_url: str) -> None:
    plain = mnemo("db-url", env={"DATABASE_URL": database_url})
    assert plain.stdout.strip() == database_url
    yoyo = mnemo("db-url", "--yoyo", env={"DATABASE_URL": database_url})
    assert yoyo.stdout.strip() == migrate.yoyo_url(database_url)
    assert yoyo.stdout.startswith("postgresql+psycopg://")


def test_mnemo_db_url_of_a_stopped_embedded_server_explains_and_starts_nothing(
    tmp_path: Path,
) -> None:
    done = mnemo("db-url", env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "not running" in done.stderr and "make run" in done.stderr
    assert not (tmp_path / "pg").exists()


def test_mnemo_db_url_gives_the_running_embedded_servers_url() -> None:
    # Outside pytest's temporary root: the server may run as another user (see test_embedded).
    tmp = Path(tempfile.mkdtemp(prefix="mnemo-cli-test-"))
    try:
        with embedded.held(tmp / "pg") as url:  # as `make run` holds it
            done = mnemo("db-url", env={"DATA_DIR": str(tmp)})
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == url
            assert done.stderr == ""  # nothing but the URL, no warning of the wheel's imports
            listed = mnemo("yoyo", "list", env={"DATA_DIR": str(tmp)})
            assert listed.returncode == 0, listed.stderr
            # Nothing applied on this fresh server: every migration is listed as U(napplied).
            assert yoyo_list(listed.stdout) == {id_: "U" for id_ in migrate.migration_ids()}
        assert embedded.running_url(tmp / "pg") is None  # mnemo yoyo did not keep it running
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_mnemo_output_into_a_closed_pipe_is_no_error(database_url: str) -> None:
    # As `mnemo yoyo list | head -n 1`, when head has left before mnemo writes.
    process = subprocess.Popen(
        [MNEMO, "yoyo", "list"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in errors, errors


def test_mnemo_yoyo_rollback_without_a_terminal_refuses_clearly(database_url: str) -> None:
    done = mnemo("yoyo", "rollback", env={"DATABASE_URL": database_url})  # stdin: not a tty
    assert done.returncode == 2
    assert "add --batch" in done.stderr and "Traceback" not in done.stderr
    listed = mnemo("yoyo", "list", env={"DATABASE_URL": database_url})
    assert set(yoyo_list(listed.stdout).values()) == {"A"}  # nothing rolled back


def test_mnemo_yoyo_list_shows_applied_migrations(database_url: str) -> None:
    done = mnemo("yoyo", "list", env={"DATABASE_URL": database_url})
    assert done.returncode == 0, done.stderr
    assert yoyo_list(done.stdout) == {id_: "A" for id_ in migrate.migration_ids()}


def test_mnemo_worker_runs_the_demo_handler_and_stops_on_sigint(
    database_url: str, tmp_path: Path
) -> None:
    """Three tasks waiting when it starts, one more while it idles (its poll a minute away: the
    notification wakes it); Ctrl-C then stops it cleanly."""

    def submit(conn: psycopg.Connection[Any], title: str) -> None:
        conn.execute(
            "INSERT INTO tasks (id, user_id, kind, title, input)"
            " SELECT gen_random_uuid(), id, 'cli-demo', %s, '{\"step_seconds\": 0}' FROM users",
            [title],
        )

    def succeeded(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT count(*) FROM tasks WHERE status = 'succeeded'").fetchone()
        assert row is not None and process.poll() is None, log.read_text()
        return int(row[0])

    log = tmp_path / "worker.log"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, username) VALUES (gen_random_uuid(), 'ops')")
        for title in ("one", "two", "three"):
            submit(conn, title)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [MNEMO, "worker", "--kind", "cli-demo", "--handler", "demo"]
                + ["--concurrency", "2", "--poll", "60"],
                cwd=ROOT,
                env={**clean, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: succeeded(conn) == 3, timeout=60, what="the first three tasks")
            wait_until(lambda: "succeeded" in log.read_text(), what="its log")
            submit(conn, "four")
            wait_until(lambda: succeeded(conn) == 4, timeout=20, what="the task sent later")
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        rows = conn.execute("SELECT title, result FROM tasks ORDER BY title").fetchall()
        logged = conn.execute(
            "SELECT e.type, e.payload FROM task_events AS e JOIN tasks AS t ON t.id = e.task_id"
            " WHERE t.title = 'four' ORDER BY e.seq"
        ).fetchall()
    steps = ["search", "read", "summarize"]
    assert [type_ for type_, _ in logged] == [
        "status",
        "status",
        "plan",
        *(kind for _ in steps for kind in ("step.started", "step.finished")),
        "status",
    ]
    assert [p["status"] for t, p in logged if t == "status"] == ["pending", "running", "succeeded"]
    assert [p["step"] for t, p in logged if t == "step.finished"] == steps
    assert [(title, result["summary"]) for title, result in rows] == [
        ("four", "all about four"),
        ("one", "all about one"),
        ("three", "all about three"),
        ("two", "all about two"),
    ]
    text = log.read_text()
    assert "worker stopped" in text and "Traceback" not in text, text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--handler", "nowhere:handler"], "cannot import nowhere"),
        (["--handler", "app.cli:main"], "no async function main"),
        (["--handler", "demo", "--concurrency", "0"], "--concurrency"),
        (["--handler", "demo", "--kind", "two words"], "is not a task kind"),
    ],
    ids=["no module", "not async", "concurrency", "kind"],
)
def test_mnemo_worker_refuses_bad_arguments_before_the_database(
    arguments: list[str], message: str
) -> None:
    done = mnemo("worker", "--kind", "k", *arguments, env={"DATABASE_URL": "postgresql://nowhere"})
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_killed_mnemo_workers_task_runs_again_after_its_lease(
    database_url: str, tmp_path: Path
) -> None:
    """SIGKILL mid-task: no release, no report. Its lease (2 s) expires, and another worker,
    its poll a minute away, takes the task again (attempt 2) once it does."""
    (tmp_path / "quick.py").write_text(
        "async def handle(job):\n    return {'attempt': job.task.attempts}\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    env = {**clean, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path)}

    def start(name: str, *arguments: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as out:
            return subprocess.Popen(
                [MNEMO, "worker", "--kind", "cli-kill", "--id", name, *arguments],
                cwd=tmp_path,  # (quick.py is importable from here)
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, username) VALUES (gen_random_uuid(), 'ops')")
        conn.execute(
            "INSERT INTO tasks (id, user_id, kind, title, input)"
            " SELECT gen_random_uuid(), id, 'cli-kill', 'long', '{\"step_seconds\": 10}'"
            "   FROM users"
        )

        def step_started() -> bool:
            row = conn.execute(
                "SELECT count(*) FROM task_events WHERE type = 'step.started'"
            ).fetchone()
            return row is not None and row[0] > 0

        def status() -> str:
            row = conn.execute("SELECT status FROM tasks").fetchone()
            assert row is not None
            return str(row[0])

        doomed = start("doomed", "--handler", "demo", "--lease", "2")
        rescuer: subprocess.Popen[bytes] | None = None
        try:
            wait_until(step_started, timeout=60, what="the first worker's step")
            doomed.kill()
            doomed.wait(timeout=30)
            assert status() == "running"
            rescuer = start("rescuer", "--handler", "quick:handle", "--poll", "60")
            wait_until(lambda: status() == "succeeded", timeout=30, what="the second attempt")
            rescuer.send_signal(signal.SIGINT)
            assert rescuer.wait(timeout=30) == 0, (tmp_path / "rescuer.log").read_text()
        finally:
            for process in (doomed, rescuer):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        row = conn.execute("SELECT attempts, result, error, worker FROM tasks").fetchone()
    assert row is not None
    attempts, result, error, worker = row
    assert (attempts, result, worker) == (2, {"attempt": 2}, "rescuer")
    assert (error["code"], error["worker"]) == ("lease_expired", "doomed")
