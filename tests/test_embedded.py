"""The embedded PostgreSQL of ``make run`` is shared by processes and stopped by the last one,
whatever killed the others; a stale ``postmaster.pid`` does not keep it from starting.

Each test runs a server of its own in a temporary data directory, since it stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from dal import embedded
from tests.support import wait_until

ROOT = Path(__file__).resolve().parent.parent

# A process that takes the server for the rest of its life (as a script calling
# dal.connect() does), prints the URL, and waits for a line on stdin before exiting normally.
USER = """
import sys
from pathlib import Path
from dal import embedded
print(embedded.url(Path(sys.argv[1])), flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A data directory outside pytest's own temporary root: run as root, the server runs as
    another user, and every pytest session resets that root to mode 0700."""
    tmp = Path(tempfile.mkdtemp(prefix="mnemo-embedded-test-"))
    try:
        yield tmp / "pg"
    finally:
        stop_leftover_server(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)


def stop_leftover_server(pgdata: Path) -> None:
    """After a failed test: a fast shutdown of the server it left running, if any."""
    try:
        pid = postmaster_pid(pgdata)
        process = psutil.Process(pid)
        if process.name() == "postgres":
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    except (OSError, ValueError, psutil.Error):
        pass


def start_user(pgdata: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(pgdata)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("postgresql://"), f"no URL from the user process: {url!r}"
    return process, url


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def server_answers(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_embedded_server_is_stopped_by_its_last_user_even_after_another_was_killed(
    pgdata: Path,
) -> None:
    killed, url = start_user(pgdata)
    survivor, same_url = start_user(pgdata)
    assert same_url == url and server_answers(url)
    pid = postmaster_pid(pgdata)

    killed.kill()  # kill -9: no cleanup of its own runs
    killed.communicate(timeout=10)
    assert server_answers(url), "the other user's server must keep running"

    survivor.communicate("\n", timeout=60)
    assert survivor.returncode == 0
    # The survivor left last: the server stops, although the killed process never said it
    # had left (the wheel's own pid list still names it).
    wait_until(lambda: stopped(pid), timeout=15, what="the server to stop")
    assert not (pgdata / "postmaster.pid").exists()


def test_embedded_server_left_running_by_a_killed_user_is_adopted_then_stopped(
    pgdata: Path,
) -> None:
    killed, url = start_user(pgdata)
    pid = postmaster_pid(pgdata)
    killed.kill()
    killed.communicate(timeout=10)
    assert not stopped(pid), "nobody was left to stop it"

    with embedded.held(pgdata) as held_url:
        assert held_url == url and server_answers(held_url)
        assert postmaster_pid(pgdata) == pid  # attached to it, not a second server
    wait_until(lambda: stopped(pid), timeout=15, what="the server to stop")


def test_embedded_server_is_not_stopped_while_another_process_holds_it(pgdata: Path) -> None:
    other, url = start_user(pgdata)
    try:
        with embedded.held(pgdata) as held_url:
            assert held_url == url
        assert server_answers(url)  # left first: the other process still uses it
        assert embedded.running_url(pgdata) == url
    finally:
        other.send_signal(signal.SIGTERM)  # dies without cleanup, like kill -9
        other.communicate(timeout=10)
    with embedded.held(pgdata):
        pass
    assert embedded.running_url(pgdata) is None


def test_embedded_server_starts_despite_a_stale_pid_file_naming_a_live_process(
    pgdata: Path,
) -> None:
    with embedded.held(pgdata) as url:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    assert not (pgdata / "postmaster.pid").exists()
    # As after a crash and a reboot: the file survived, and its pid now names some other
    # process (here a sleeping child of this test).
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (pgdata / "postmaster.pid").write_text("\n".join([str(sleeper.pid), *lines[1:]]) + "\n")
        os.chmod(pgdata / "postmaster.pid", 0o600)
        with embedded.held(pgdata) as again:
            assert again == url and server_answers(again)
            assert postmaster_pid(pgdata) != sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    assert embedded.running_url(pgdata) is None


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only as root does the server run as another user, whom a mode shuts out",
)
def test_embedded_server_stops_even_when_pg_ctl_cannot_reach_its_directory(pgdata: Path) -> None:
    with embedded.held(pgdata) as url:
        assert server_answers(url)
        pid = postmaster_pid(pgdata)
        # What each pytest session does to its temporary root: pg_ctl, run as the server's
        # user, can no longer reach the data directory (the running server can, from inside).
        pgdata.parent.chmod(0o700)
    wait_until(lambda: stopped(pid), timeout=30, what="the server to stop")
