"""No session state leaks from one use of a pooled connection to the next.

Mnemo's pool skips asyncpg's reset query on release (dal.database.keep_session). That is safe
only because nothing Mnemo runs leaves session state behind; these tests prove it, statically
for every named query and dynamically after every call into the data layer, failures included.

"Every call" is found, not listed: every public coroutine of every module of ``dal.gateways``,
``dal.usecases`` and ``dal.langgraph`` (functions, and methods of the classes they define: the
saver, its group commit). The dynamic test records which of them the exercise reached, directly
or through another, and fails naming each one it did not: a new module or function needs an
exercise in ``exercise`` below before the suite passes again.
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
from typing import Any

import asyncpg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

import dal.gateways
from dal.database import open_pool, transaction
from dal.errors import DomainError
from dal.gateways import checkpoints, conversations, messages, meta, threads, users
from dal.ids import new_id
from dal.langgraph import AsyncpgSaver
from dal.queries import Q
from dal.records.conversations import ConversationDraft, ConversationPatch
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.threads import ThreadStateDraft
from dal.records.users import UserDraft, UserPatch
from dal.settings import Settings
from dal.usecases import threads as thread_cases

# Packages whose every module's public coroutines are exercised (a missing package is skipped:
# dal.usecases is optional).
PACKAGES = ("dal.gateways", "dal.usecases", "dal.langgraph")


# Statements that change the session, and functions or clauses that do so inside others.
SESSION_STATEMENTS = {"SET", "RESET", "LISTEN", "PREPARE", "DECLARE", "DISCARD", "LOAD"}
SESSION_STATE = re.compile(
    r"set_config\s*\(|pg_advisory_lock|CREATE\s+(TEMP|TEMPORARY)\b|WITH\s+HOLD",
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
    """The walk finds what the exercise below must reach (the check can fail)."""
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
    dal.gateways), so the exercise test fails naming its functions until one reaches them."""
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


def config(thread_id: str, checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def collect(generator: Any) -> list[Any]:
    return [item async for item in generator]


async def exercise(pool: Any, settings: Settings, check: Callable[[str], Awaitable[None]]) -> None:
    """Call every public coroutine of the data layer at least once (some through others),
    successes and domain failures, checking the session after each step."""

    async def run(steps: list[Step]) -> None:
        for label, step in steps:
            try:
                async with asyncio.timeout(60):  # a call needing a second connection hangs
                    await step()
            except DomainError:
                pass
            await check(label)

    created = await users.create_user(pool, draft=UserDraft(username="s"))
    await check("create_user")
    uid = created.user.id
    await run(
        [
            ("get_user", lambda: users.get_user(pool, user_id=uid)),
            ("get_user_by_username", lambda: users.get_user_by_username(pool, username="s")),
            (
                "update_user",
                lambda: users.update_user(pool, user_id=uid, patch=UserPatch(display_name="S")),
            ),
            (
                "get_user_by_token",
                lambda: users.get_user_by_token(pool, secret=created.token.secret),
            ),
            (
                "create_user conflict",
                lambda: users.create_user(pool, draft=UserDraft(username="s")),
            ),
            ("insert_token", lambda: users.insert_token(pool, user_id=uid)),
            ("issue_token", lambda: users.issue_token(pool, user_id=uid)),
            ("list_tokens", lambda: users.list_tokens(pool, user_id=uid, limit=10)),
            (
                "revoke_token",
                lambda: users.revoke_token(pool, user_id=uid, token_id=created.token.token.id),
            ),
            ("get_server_state", lambda: meta.get_server_state(pool)),
        ]
    )

    conv = await conversations.insert_conversation(pool, user_id=uid, draft=ConversationDraft())
    cid = conv.id
    mid = new_id()
    draft = MessageDraft(id=mid, role="assistant", parts=[], status="streaming")
    await run(
        [
            (
                "create_conversation",
                lambda: conversations.create_conversation(
                    pool, user_id=uid, draft=ConversationDraft(title="second")
                ),
            ),
            (
                "get_conversation",
                lambda: conversations.get_conversation(pool, user_id=uid, conversation_id=cid),
            ),
            ("list_conversations", lambda: conversations.list_conversations(pool, user_id=uid)),
            (
                "update_conversation stale",
                lambda: conversations.update_conversation(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    patch=ConversationPatch(title="t"),
                    expected_version=9,
                ),
            ),
            (
                "insert_message",
                lambda: messages.insert_message(
                    pool, user_id=uid, conversation_id=cid, draft=draft
                ),
            ),
            (
                "insert_message retry",
                lambda: messages.insert_message(
                    pool, user_id=uid, conversation_id=cid, draft=draft
                ),
            ),
            (
                "update_message",
                lambda: messages.update_message(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    message_id=mid,
                    patch=MessagePatch(
                        append_parts=[{"type": "text", "text": "x"}], status="complete"
                    ),
                ),
            ),
            (
                "update_message conflict",
                lambda: messages.update_message(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    message_id=mid,
                    patch=MessagePatch(append_parts=[{"type": "text", "text": "x"}]),
                ),
            ),
            (
                "insert_message NUL",
                lambda: messages.insert_message(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    draft=MessageDraft(role="user", parts=[{"type": "text", "text": "\x00"}]),
                ),
            ),
            (
                "list_messages",
                lambda: messages.list_messages(pool, user_id=uid, conversation_id=cid),
            ),
            (
                "list_messages after",
                lambda: messages.list_messages(pool, user_id=uid, conversation_id=cid, after=0),
            ),
            (
                "get_message",
                lambda: messages.get_message(
                    pool, user_id=uid, conversation_id=cid, message_id=mid
                ),
            ),
            (
                "delete_message",
                lambda: messages.delete_message(
                    pool, user_id=uid, conversation_id=cid, message_id=mid
                ),
            ),
        ]
    )

    # Threads and checkpoints: through the saver (its group commit included), the use cases
    # (repeatable-read snapshots) and the gateways they do not reach.
    saver = AsyncpgSaver(pool, database_url=settings.database_url, user_id=uid)
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"n": 1}
    checkpoint["channel_versions"] = versions = {"n": saver.get_next_version(None, None)}
    saved = await saver.aput(config("t1"), checkpoint, {"step": 1, "run_id": "r1"}, versions)
    await check("aput")
    head = saved["configurable"]["checkpoint_id"]
    state = ThreadStateDraft(values={"n": 2})
    await run(
        [
            ("setup", saver.setup),
            ("aput_writes", lambda: saver.aput_writes(saved, [("n", 3)], task_id="task-1")),
            ("aget_tuple", lambda: saver.aget_tuple(config("t1"))),
            ("aget_tuple by id", lambda: saver.aget_tuple(config("t1", head))),
            # Each of list_checkpoints' access paths.
            ("alist", lambda: collect(saver.alist(config("t1")))),
            ("alist thread", lambda: collect(saver.alist({"configurable": {"thread_id": "t1"}}))),
            ("alist by metadata", lambda: collect(saver.alist(config("t1"), filter={"step": 1}))),
            ("alist by id", lambda: collect(saver.alist(config("t1", head)))),
            ("alist before", lambda: collect(saver.alist(None, before=config("t1", head)))),
            ("alist filter", lambda: collect(saver.alist(None, filter={"step": 1}, limit=2))),
            (
                "aget_delta_channel_history",
                lambda: saver.aget_delta_channel_history(config=config("t1", head), channels=["n"]),
            ),
            (
                "put_thread_state",
                lambda: thread_cases.put_thread_state(
                    pool, user_id=uid, thread_id="t2", draft=state
                ),
            ),
            (
                "get_thread_state",
                lambda: thread_cases.get_thread_state(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "get_thread_state missing",
                lambda: thread_cases.get_thread_state(pool, user_id=uid, thread_id="none"),
            ),
            (
                "list_thread_history",
                lambda: thread_cases.list_thread_history(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "copy_thread",
                lambda: thread_cases.copy_thread(
                    pool, user_id=uid, thread_id="t2", target_thread_id="t3"
                ),
            ),
            (
                "copy_thread taken",
                lambda: thread_cases.copy_thread(
                    pool, user_id=uid, thread_id="t2", target_thread_id="t3"
                ),
            ),
            (
                "prune_thread",
                lambda: thread_cases.prune_thread(
                    pool, user_id=uid, thread_id="t3", strategy="keep_latest"
                ),
            ),
            ("get_thread", lambda: threads.get_thread(pool, user_id=uid, thread_id="t1")),
            ("list_threads", lambda: threads.list_threads(pool, user_id=uid)),
            (
                "upsert_thread_of_user",
                lambda: threads.upsert_thread_of_user(
                    pool, user_id=uid, thread_id="t4", conversation_id=cid
                ),
            ),
            ("get_thread_locked", lambda: locked(pool, uid, "t4")),
            (
                "get_checkpoint",
                lambda: checkpoints.get_checkpoint(
                    pool, owner=saver.owner, thread_id="t1", checkpoint_ns="", checkpoint_id=head
                ),
            ),
            ("acopy_thread", lambda: saver.acopy_thread("t1", "t5")),
            ("aprune keep_latest", lambda: saver.aprune(["t5"])),
            ("aprune delete", lambda: saver.aprune(["t5"], strategy="delete")),
            ("adelete_for_runs", lambda: saver.adelete_for_runs(["r1"])),
            ("adelete_thread", lambda: saver.adelete_thread("t3")),
            (
                "delete_thread_of_user",
                lambda: threads.delete_thread_of_user(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "delete_thread_of_user missing",
                lambda: threads.delete_thread_of_user(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "delete_conversation",
                lambda: conversations.delete_conversation(pool, user_id=uid, conversation_id=cid),
            ),
            ("deactivate_user", lambda: users.deactivate_user(pool, user_id=uid)),
        ]
    )


async def locked(pool: Any, user_id: Any, thread_id: str) -> None:
    async with transaction(pool) as conn:
        await threads.get_thread_locked(conn, user_id=user_id, thread_id=thread_id)
        await users.get_user_locked(conn, user_id=user_id)


async def test_every_call_into_the_data_layer_leaves_the_session_clean(
    one_connection_pool: Any, settings: Settings, reached: dict[str, set[str]]
) -> None:
    pool = one_connection_pool
    pids: set[int] = set()

    async def check(label: str) -> None:
        async with pool.acquire() as conn:
            pids.add(conn.get_server_pid())
            assert await leftovers(conn) == CLEAN, label

    await exercise(pool, settings, check)
    assert len(pids) == 1  # one session throughout: each check saw what the previous call left
    calls = reached["*"]
    missing = {
        module: sorted(names - calls)
        for module, names in reached.items()
        if module != "*" and names - calls
    }
    assert missing == {}, f"no exercise in {__name__}.exercise reaches: {missing}"


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
