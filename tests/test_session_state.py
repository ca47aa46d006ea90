"""No session state leaks from one use of a pooled connection to the next.

Mnemo's pool skips asyncpg's reset query on release (dal.database.keep_session). That is safe
only because nothing Mnemo runs leaves session state behind; these tests prove it, statically
for every named query and dynamically after every call into the data layer, failures included.

"Every call" is found, not listed: every public coroutine of every module of ``dal.gateways``,
``dal.usecases`` and ``dal.langgraph`` (functions, and methods of the classes they define: the
saver, its group commit). The calls themselves live with each aggregate's tests, by convention:
a test module of ``tests`` or ``tests.dal`` (``test_*.py``) may define

    async def session_exercise(pool, settings, run) -> None

which makes what it needs (its own user, conversation, thread...) and calls its aggregate's
functions through ``run`` (a ``SessionRun``: ``await run([(label, call), ...])`` for steps that
may succeed or fail with a domain error, ``await run.one(label, call)`` for one whose result it
goes on with). The dynamic test finds these exercises by walking the test packages, runs each on
a pool of one connection with the session checked after every step, records which public
coroutines they reached, directly or through another, and fails naming each one none reached.
So a new aggregate adds its calls to its own test module's ``session_exercise``; this module
does not change.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import asyncpg
import pytest

import dal.gateways
import tests.dal
from dal.database import open_pool
from dal.errors import DomainError
from dal.queries import Q
from dal.settings import Settings

# Packages whose every module's public coroutines are exercised (a missing package is skipped:
# dal.usecases is optional).
PACKAGES = ("dal.gateways", "dal.usecases", "dal.langgraph")
# Test packages whose test_*.py modules are searched (not recursively) for an EXERCISE.
TEST_PACKAGES = ("tests", "tests.dal")
EXERCISE = "session_exercise"


# Statements that change the session, and functions or clauses that do so inside others
# (set_config with is_local true changes the transaction only, and ends with it).
SESSION_STATEMENTS = {"SET", "RESET", "LISTEN", "PREPARE", "DECLARE", "DISCARD", "LOAD"}
SESSION_STATE = re.compile(
    r"set_config\s*\((?![^)]*,\s*true\s*\))|pg_advisory_lock|CREATE\s+(TEMP|TEMPORARY)\b"
    r"|WITH\s+HOLD",
    re.IGNORECASE,
)


def changes_session(sql: str) -> bool:
    return sql.split(None, 1)[0].upper() in SESSION_STATEMENTS or bool(SESSION_STATE.search(sql))


def test_no_named_query_changes_session_state() -> None:
    offenders = [q.source for q in Q.values() if changes_session(q.sql)]
    assert offenders == []
    # The check itself can fail.
    assert changes_session("SET work_mem = '1MB'") and changes_session("SELECT pg_advisory_lock(1)")
    assert not changes_session("UPDATE t\n   SET a = 1")
    assert changes_session("SELECT set_config('statement_timeout', $1, false)")
    assert not changes_session("SELECT set_config('statement_timeout', $1, true)")


async def leftovers(conn: Any) -> dict[str, Any]:
    """Everything a session can carry over, as seen from that session."""
    return {
        "in_transaction": conn.is_in_transaction(),
        # Settings a RESET would change. asyncpg's type introspection turns jit off for its
        # query and sets it back (set_config, so "source = 'session'" with the value a RESET
        # would give anyway): the saver's first statements show it.
        "session_settings": await conn.fetch(
            "SELECT name, setting FROM pg_settings"
            " WHERE source = 'session' AND setting IS DISTINCT FROM reset_val"
        ),
        "listening": await conn.fetch("SELECT pg_listening_channels()"),
        "advisory_locks": await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ),
        # The unnamed portal is the query asking; any named one would be left over.
        "cursors": await conn.fetchval("SELECT count(*) FROM pg_cursors WHERE name <> ''"),
        "sql_prepared": await conn.fetchval(
            "SELECT count(*) FROM pg_prepared_statements WHERE from_sql"
        ),
        "temp_schema": await conn.fetchval("SELECT pg_my_temp_schema()::int"),
    }


CLEAN = {
    "in_transaction": False,
    "session_settings": [],
    "listening": [],
    "advisory_locks": 0,
    "cursors": 0,
    "sql_prepared": 0,
    "temp_schema": 0,
}


def data_layer_modules() -> Iterator[ModuleType]:
    """Every module of PACKAGES, found by walking the packages (none is listed by hand)."""
    for package_name in PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ModuleNotFoundError as exc:
            if exc.name != package_name:
                raise
            continue
        yield package
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            yield importlib.import_module(info.name)


def is_coroutine(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def public_coroutines(module: ModuleType) -> Iterator[tuple[Any, str, str]]:
    """(owner, attribute, qualified name) of each public coroutine function of ``module`` and
    each public coroutine method of the classes it defines (their own, not inherited)."""
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if is_coroutine(value):
            yield module, name, f"{module.__name__}.{name}"
        elif inspect.isclass(value):
            for attribute, method in vars(value).items():
                if not attribute.startswith("_") and is_coroutine(method):
                    yield value, attribute, f"{module.__name__}.{name}.{attribute}"


def recording(function: Any, name: str, reached: set[str]) -> Any:
    """``function``, noting ``name`` in ``reached`` whenever it is called."""
    if inspect.isasyncgenfunction(function):

        @functools.wraps(function)
        async def generator(*args: Any, **kwargs: Any) -> Any:
            reached.add(name)
            async for item in function(*args, **kwargs):
                yield item

        return generator

    @functools.wraps(function)
    async def call(*args: Any, **kwargs: Any) -> Any:
        reached.add(name)
        return await function(*args, **kwargs)

    return call


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """{module: its public coroutines}, each patched to note itself in ``reached["*"]``."""
    found: dict[str, set[str]] = {}
    calls: set[str] = set()
    for module in data_layer_modules():
        for owner, attribute, name in public_coroutines(module):
            found.setdefault(module.__name__, set()).add(name)
            monkeypatch.setattr(owner, attribute, recording(getattr(owner, attribute), name, calls))
    return {**found, "*": calls}


def test_the_data_layer_is_found_by_walking_its_packages(reached: dict[str, set[str]]) -> None:
    """The walk finds what the exercises must reach (the check can fail)."""
    found = set().union(*(names for module, names in reached.items() if module != "*"))
    for name in (
        "dal.gateways.users.insert_user",
        "dal.gateways.threads.get_thread",
        "dal.gateways.checkpoints.upsert_checkpoint_batch",
        "dal.langgraph.saver.AsyncpgSaver.aput",
        "dal.langgraph.saver.AsyncpgSaver.alist",  # an async generator
        "dal.langgraph.group_commit.GroupCommit.save",
    ):
        assert name in found, name
    assert not any(name.rsplit(".", 1)[1].startswith("_") for name in found)


def test_a_new_gateway_module_is_found_without_editing_this_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module added to a package is walked too (here one in a second folder of
    dal.gateways), so the exercise test fails naming its functions until an exercise reaches
    them."""
    (tmp_path / "probe_aggregate.py").write_text("async def get_probe(db):\n    return None\n")
    monkeypatch.setattr(dal.gateways, "__path__", [*dal.gateways.__path__, str(tmp_path)])
    try:
        found = {name for m in data_layer_modules() for _, _, name in public_coroutines(m)}
    finally:
        sys.modules.pop("dal.gateways.probe_aggregate", None)
    assert "dal.gateways.probe_aggregate.get_probe" in found


@pytest.fixture
async def one_connection_pool(settings: Settings) -> Any:
    """A pool of exactly one connection: every call reuses the previous call's session."""
    pool = await open_pool(
        settings.model_copy(update={"db_min_connections": 1, "db_max_connections": 1})
    )
    try:
        yield pool
    finally:
        await pool.close()


Step = tuple[str, Callable[[], Awaitable[Any]]]
T = TypeVar("T")


class SessionRun:
    """What each aggregate's ``session_exercise`` is given: it calls steps, each under a bound
    (a call that needs a second connection of the one-connection pool hangs), and checks the
    session after each one."""

    def __init__(self, check: Callable[[str], Awaitable[None]]) -> None:
        self.check = check

    async def __call__(self, steps: list[Step]) -> None:
        """Each step in turn, successes and domain failures alike (a step may be meant to fail
        with a domain error; anything else fails the test), the session checked after each."""
        for label, step in steps:
            try:
                async with asyncio.timeout(60):
                    await step()
            except DomainError:
                pass
            await self.check(label)

    async def one(self, label: str, step: Callable[[], Awaitable[T]]) -> T:
        """One step whose result the exercise goes on with (any error fails the test), the
        session checked after it."""
        async with asyncio.timeout(60):
            result = await step()
        await self.check(label)
        return result


def session_exercises() -> Iterator[tuple[str, Any]]:
    """(module, its EXERCISE) for each test module of TEST_PACKAGES that defines one, found by
    walking the packages (none is listed by hand)."""
    for package_name in TEST_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            if info.ispkg or not info.name.rsplit(".", 1)[1].startswith("test_"):
                continue
            module = importlib.import_module(info.name)
            exercise = getattr(module, EXERCISE, None)
            if exercise is None:
                continue
            assert inspect.iscoroutinefunction(exercise), f"{info.name}.{EXERCISE}: not async"
            yield info.name, exercise


def test_the_aggregates_exercises_are_found_by_walking_the_tests() -> None:
    """Each aggregate's dal test module holds its exercise, found without a list here."""
    found = dict(session_exercises())
    for module in ("users", "conversations", "messages", "threads"):
        assert f"tests.dal.test_{module}" in found, module
    assert __name__ not in found  # this module holds the harness, no exercise


def test_a_new_aggregates_exercise_is_found_without_editing_this_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test module added to tests.dal with a session_exercise is run too; a module whose name
    is not test_*.py is not a test module and is left alone."""
    exercise = f"async def {EXERCISE}(pool, settings, run):\n    pass\n"
    (tmp_path / "test_probe_aggregate.py").write_text(exercise)
    (tmp_path / "probe_helpers.py").write_text(exercise)
    monkeypatch.setattr(tests.dal, "__path__", [*tests.dal.__path__, str(tmp_path)])
    try:
        found = dict(session_exercises())
    finally:
        sys.modules.pop("tests.dal.test_probe_aggregate", None)
    assert "tests.dal.test_probe_aggregate" in found
    assert "tests.dal.probe_helpers" not in found


async def test_every_call_into_the_data_layer_leaves_the_session_clean(
    one_connection_pool: Any, settings: Settings, reached: dict[str, set[str]]
) -> None:
    """Every aggregate's session_exercise runs on one connection, the session checked after
    each of its steps; then every public coroutine found must have been reached by one."""
    pool = one_connection_pool
    pids: set[int] = set()

    async def check(label: str) -> None:
        async with pool.acquire() as conn:
            pids.add(conn.get_server_pid())
            assert await leftovers(conn) == CLEAN, label

    exercises = list(session_exercises())
    assert exercises
    for module, exercise in exercises:

        async def check_in(label: str, module: str = module) -> None:
            await check(f"{module}.{EXERCISE}: {label}")

        await exercise(pool, settings, SessionRun(check_in))
    assert len(pids) == 1  # one session throughout: each check saw what the previous call left
    calls = reached["*"]
    missing = {
        module: sorted(names - calls)
        for module, names in reached.items()
        if module != "*" and names - calls
    }
    assert missing == {}, (
        f"nothing reached {missing}; the fix: a step calling each of them in an"
        f" `async def {EXERCISE}(pool, settings, run)` of the aggregate's test module"
        f" (tests/dal/test_<aggregate>.py, found by {__name__}.session_exercises)"
    )


async def test_leftovers_detects_what_a_reset_would_have_cleared(
    one_connection_pool: Any,
) -> None:
    """The checks above can fail: state set by hand on a pooled connection is seen next time."""
    pool = one_connection_pool
    async with pool.acquire() as conn:
        await conn.execute("SET work_mem = '7MB'")
        await conn.execute("LISTEN mnemo_probe")
        await conn.execute("SELECT pg_advisory_lock(42)")
    async with pool.acquire() as conn:
        seen = await leftovers(conn)
        assert seen["session_settings"] and seen["listening"] and seen["advisory_locks"] == 1
        await conn.execute("RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()")
    # An open transaction is still rolled back on release (asyncpg always does that).
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    await pool.release(conn)
    async with pool.acquire() as conn:
        assert await leftovers(conn) == CLEAN
    assert isinstance(pool, asyncpg.Pool)
