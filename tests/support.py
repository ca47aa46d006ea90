"""Helpers the tests share: databases and servers to run on, ports, waiting.

What a test makes through the app or the gateways (users, tokens, conversations, checkpoints)
is made by the helpers of tests/app/conftest.py and tests/dal/conftest.py.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Any, *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 0.1 s until it is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def server_settings(url: str, *names: str) -> dict[str, str]:
    """The current value of each setting ``names`` as a new session on ``url`` sees it."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            name: str(conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0])  # type: ignore[index]
            for name in names
        }


@contextmanager
def embedded_server(
    pgdata: Path | None = None,
    *,
    prefix: str = "mnemo-test-pg-",
    settings: Mapping[str, str] = {},
) -> Iterator[Any]:
    """An embedded PostgreSQL of the block's own, stopped and deleted at the end; yields the
    wheel's server handle (``get_uri("postgres")``, ``ensure_postgres_running()``, ``pgdata``).

    Its data directory is ``pgdata`` (a directory to be deleted), else one in a private
    temporary directory whose name starts with ``prefix`` (not pytest's: a pytest run starting
    meanwhile resets pytest's base directory to mode 0700, locking the server's system user
    out).
    ``settings`` are written into its configuration (``ALTER SYSTEM``: the server is the
    block's alone)."""
    from dal import embedded

    with ExitStack() as stack:
        if pgdata is None:
            pgdata = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))) / "pg"
        server = embedded.server(pgdata, delete_on_exit=True)
        stack.callback(server.cleanup)
        url = str(server.get_uri("postgres"))
        if settings:
            with psycopg.connect(url, autocommit=True) as conn:
                for name, value in settings.items():
                    conn.execute(
                        sql.SQL("ALTER SYSTEM SET {} = {}").format(
                            sql.Identifier(name), sql.Literal(value)
                        )
                    )
                conn.execute("SELECT pg_reload_conf()")
            # The postmaster reloads on its own time: wait until a new session sees them.
            wait_until(
                lambda: server_settings(url, *settings) == dict(settings),
                timeout=10,
                what="the embedded server's settings",
            )
        yield server


class Databases:
    """The databases a test run makes on one server, made and dropped by threads beside the
    tests (``WORKERS``, each on a connection of its own).

    ``copy(template)`` hands out a copy of ``template`` made ahead of time (once
    ``make_ahead(template)`` was called) and drops it in the background afterwards, so a test
    waits neither for ``CREATE DATABASE`` nor for ``DROP DATABASE``. Copies use
    ``STRATEGY FILE_COPY``: for a small template it is faster than the default WAL_LOG
    (measured on PostgreSQL 15 and 18, create and drop together). Every database made gets
    ``settings`` as its defaults (``ALTER DATABASE ... SET``, which a copy does not inherit).

    Two workers: on a server busy with other clients a FILE_COPY waits for a checkpoint, and
    two waiting at once share it (measured on a shared PostgreSQL 15: 60 create+drop cycles
    took 341-362 ms each one at a time, 115 ms each two at a time, 163-182 ms four at a time).
    """

    AHEAD = 2  # copies kept ready per template
    WORKERS = 2

    def __init__(self, server_url: str, *, prefix: str, settings: Mapping[str, str] = {}):
        self.server_url = server_url
        self.prefix = prefix
        self.settings = dict(settings)
        self._worker = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="test-databases")
        self._local = threading.local()  # each worker's connection
        self._conns: list[psycopg.Connection[Any]] = []
        self._ready: dict[str, deque[Future[str]]] = {}
        self._drops: list[Future[None]] = []

    def __enter__(self) -> Databases:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def url(self, name: str) -> str:
        return with_database(self.server_url, name)

    def create(self, template: str | None = None, *, label: str = "db") -> str:
        """A new database (a copy of ``template``, else an empty one), made now; its name is
        the prefix, ``label`` and a random part."""
        return self._worker.submit(self._create, template, label).result()

    def drop(self, name: str) -> None:
        self._worker.submit(self._drop, name).result()

    def make_ahead(self, template: str) -> None:
        """From now on keep ``AHEAD`` copies of ``template`` ready."""
        ready = self._ready.setdefault(template, deque())
        while len(ready) < self.AHEAD:
            ready.append(self._worker.submit(self._create, template, "test"))

    @contextmanager
    def copy(self, template: str | None = None) -> Iterator[str]:
        """The URL of a database of the block's own (a copy of ``template``, else empty),
        dropped in the background when the block ends."""
        ready = self._ready.get(template) if template is not None else None
        if ready:
            name = ready.popleft().result()
            ready.append(self._worker.submit(self._create, template, "test"))
        else:
            name = self.create(template, label="empty" if template is None else "test")
        try:
            yield self.url(name)
        finally:
            self._drops.append(self._worker.submit(self._drop, name))

    def close(self) -> None:
        """Drop what is left (ready copies, pending drops), then stop the thread; a drop that
        failed is raised here."""
        try:
            for ready in self._ready.values():
                while ready:
                    future = ready.popleft()
                    if future.exception() is None:
                        self._drops.append(self._worker.submit(self._drop, future.result()))
            for done in self._drops:
                done.result()
        finally:
            self._worker.shutdown()
            for conn in self._conns:
                conn.close()

    # The rest runs on the worker threads.

    def _execute(self, statement: sql.Composable) -> None:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = psycopg.connect(self.server_url, autocommit=True)
            self._conns.append(conn)
        conn.execute(statement)

    def _create(self, template: str | None, label: str) -> str:
        name = f"{self.prefix}_{label}_{secrets.token_hex(6)}"
        statement = sql.SQL("CREATE DATABASE {} STRATEGY FILE_COPY").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        self._execute(statement)
        for key, value in self.settings.items():
            self._execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(key), sql.Literal(value)
                )
            )
        return name

    def _drop(self, name: str) -> None:
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def checkpoint_config(
    thread_id: str, *, checkpoint_ns: str = "", user_id: str | None = None
) -> dict[str, Any]:
    """The RunnableConfig naming a thread's namespace (and its owner, if ``user_id``)."""
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if user_id is not None:
        configurable["user_id"] = user_id
    return {"configurable": configurable}


async def save_checkpoint(
    saver: Any,
    thread_id: str,
    values: Mapping[str, Any],
    *,
    checkpoint_ns: str = "",
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    writes: list[tuple[str, Any]] | None = None,
) -> str:
    """Save a new checkpoint (LangGraph's ``empty_checkpoint`` holding ``values``, each channel
    at a new version) through a saver's ``aput``, as a graph would, and a task's pending
    ``writes`` on it; returns the checkpoint's id. ``metadata`` defaults to ``{"step": 1}``."""
    from langgraph.checkpoint.base import empty_checkpoint

    config = checkpoint_config(thread_id, checkpoint_ns=checkpoint_ns, user_id=user_id)
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = versions = {
        channel: saver.get_next_version(None, None) for channel in values
    }
    saved = await saver.aput(
        config, checkpoint, dict(metadata) if metadata is not None else {"step": 1}, versions
    )
    if writes:
        await saver.aput_writes(saved, writes, task_id="task-1")
    return str(saved["configurable"]["checkpoint_id"])


def change_authentication(database_url: str, sql: str, params: Any, *, user_id: str) -> None:
    """Run ``sql`` (a change to a user or their tokens) as a script outside the app would, then
    wait as app/token_cache.py's routes do until every app process listening on the database
    has said it applied the change (its ``mnemo_auth_applied`` answer): what a script does
    when its next request must find the change applied."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN mnemo_auth_applied")
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'mnemo-auth-listener' AND datname = current_database()"
        ).fetchone()
        listeners = int(row[0]) if row else 0
        conn.execute(sql, params)
        applied: set[int] = set()
        if listeners:
            for note in conn.notifies(timeout=10):
                if note.payload.endswith(f":user:{user_id}"):
                    applied.add(note.pid)
                if len(applied) >= listeners:
                    break
        assert len(applied) >= listeners, f"{len(applied)} of {listeners} listeners applied it"
