"""``make run`` as a user runs it, in its own process group (``setsid make run``): a SIGTERM
or Ctrl-C to the group, or a SIGTERM to the app alone, stops the app and the embedded
PostgreSQL; after a ``kill -9`` the next ``make run`` starts cleanly and stops what it finds.

Each test uses a DATA_DIR of its own (so an embedded server of its own) and a free port. ``-o
.venv/.installed`` keeps make from reinstalling the virtualenv the suite runs in; the rest is the
Makefile's own recipe.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests import support
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Any, *, timeout: float = 60.0, what: str = "condition") -> None:
    """support.wait_until with this module's longer default (make run installs and migrates)."""
    support.wait_until(predicate, timeout=timeout, what=what)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def group_is_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR outside pytest's temporary root (which each pytest session resets to 0700,
    while the embedded server runs as another user when the suite runs as root)."""
    tmp = Path(tempfile.mkdtemp(prefix="mnemo-make-run-test-"))
    try:
        yield tmp / "data"
    finally:
        postmaster = Postmaster(tmp / "data" / "pg")
        if postmaster.running():  # only after a failure: stop what the test left behind
            psutil.Process(postmaster.pid()).send_signal(signal.SIGINT)
            wait_until(lambda: not postmaster.running(), timeout=30, what="cleanup")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def launched() -> Iterator[list[MakeRun]]:
    """The make runs a test starts: whatever a failed test left running is killed."""
    runs: list[MakeRun] = []
    yield runs
    for run in runs:
        if not group_is_empty(run.pgid):
            os.killpg(run.pgid, signal.SIGKILL)
        run.process.wait()


@dataclass
class Postmaster:
    pgdata: Path

    def pid(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().split()[0])

    def running(self) -> bool:
        try:
            process = psutil.Process(self.pid())
            return process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
            return False


@dataclass
class MakeRun:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid  # setsid: make leads its own group

    def app_pid(self) -> int:
        """The app: the process make runs last (its recipe execs ``mnemo serve``)."""
        children = psutil.Process(self.process.pid).children()
        assert len(children) == 1, children
        return children[0].pid

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            raise AssertionError("make run did not stop:\n" + self.log.read_text()) from None


def start_make_run(data_dir: Path, name: str, launched: list[MakeRun]) -> MakeRun:
    port = free_port()
    log = data_dir.parent / f"{name}.log"
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_", "MAKE"))}
    env = {
        **{k: v for k, v in keep.items() if k not in ("MFLAGS", "DATA_DIR", "TEST_DATABASE_URL")},
        "DATABASE_URL": "",  # empty beats a developer's .env: the embedded server
        "DATA_DIR": str(data_dir),
        "APP_PORT": str(port),
        "APP_HOST": "127.0.0.1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # setsid make run
        )
    run = MakeRun(process, f"http://127.0.0.1:{port}", log)
    launched.append(run)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError("make run exited:\n" + log.read_text())
        try:
            return httpx.get(run.base + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout=120, what="make run to serve")
    return run


def assert_stopped_everything(run: MakeRun, postmaster: Postmaster, pid: int) -> None:
    wait_until(lambda: gone(pid), timeout=15, what="the embedded server to stop")
    assert not postmaster.running()
    wait_until(lambda: group_is_empty(run.pgid), timeout=15, what="make's process group to end")


def test_make_run_sigterm_to_its_group_stops_the_app_and_the_embedded_server(
    data_dir: Path, launched: list[MakeRun]
) -> None:
    run = start_make_run(data_dir, "sigterm", launched)
    postmaster = Postmaster(data_dir / "pg")
    pid = postmaster.pid()
    os.killpg(run.pgid, signal.SIGTERM)  # a service manager stopping it
    run.wait()
    assert_stopped_everything(run, postmaster, pid)
    assert "Traceback" not in run.log.read_text(), run.log.read_text()


def test_make_run_sigterm_to_the_app_alone_stops_the_embedded_server(
    data_dir: Path, launched: list[MakeRun]
) -> None:
    run = start_make_run(data_dir, "app-alone", launched)
    postmaster = Postmaster(data_dir / "pg")
    pid = postmaster.pid()
    os.kill(run.app_pid(), signal.SIGTERM)
    assert run.wait() == 0, run.log.read_text()  # the app stopped cleanly, so make succeeds
    assert_stopped_everything(run, postmaster, pid)


def test_make_run_after_kill_9_starts_cleanly_and_ctrl_c_stops_what_it_found(
    data_dir: Path, launched: list[MakeRun]
) -> None:
    postmaster = Postmaster(data_dir / "pg")
    # 1. kill -9 of make and the app: nothing can stop the server, which keeps running.
    first = start_make_run(data_dir, "killed", launched)
    pid = postmaster.pid()
    os.killpg(first.pgid, signal.SIGKILL)
    first.wait()
    assert postmaster.running()

    # 2. The next make run adopts it; then kill -9 of everything, the server included.
    second = start_make_run(data_dir, "adopting", launched)
    assert postmaster.pid() == pid
    children = psutil.Process(pid).children()
    os.killpg(second.pgid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    second.wait()
    # Its workers notice and exit. PostgreSQL refuses to start while a pid its lock files name
    # exists, even as a zombie: wait until init has reaped them all (a slow init here).
    for process in [psutil.Process(pid) if psutil.pid_exists(pid) else None, *children]:
        if process is not None:
            wait_until(lambda p=process.pid: not psutil.pid_exists(p), timeout=60, what="reaping")
    assert (data_dir / "pg" / "postmaster.pid").exists()  # stale

    # 3. A make run over the stale postmaster.pid starts a server; Ctrl-C stops both.
    third = start_make_run(data_dir, "after-crash", launched)
    new_pid = postmaster.pid()
    assert new_pid != pid
    with httpx.Client(base_url=third.base, timeout=10) as http:
        assert http.get("/health").json()["status"] == "ok"
    os.killpg(third.pgid, signal.SIGINT)  # a terminal's Ctrl-C
    third.wait()
    assert_stopped_everything(third, postmaster, new_pid)
