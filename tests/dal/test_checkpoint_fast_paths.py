"""The saver's common calls run queries of their own, each served by an index.

``saver.aget_tuple({"configurable": {"thread_id": t}})`` and ``saver.alist(...)`` with a
thread id and no namespace are what LangGraph's documentation shows: they must not fall back to
the catch-all ``list_checkpoints_of_owner_filtered`` (optional filters written
``$n IS NULL OR ...``), whose generic plan scans and sorts every thread.
tests/dal/test_checkpoint_plans.py proves each of these queries' plans; here, that the saver
picks them, and that they answer right.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from dal.gateways import checkpoints
from dal.gateways.checkpoints import NO_OWNER
from dal.langgraph import AsyncpgSaver
from dal.queries import Q
from dal.records.checkpoints import CheckpointPut

NAMES = {query.sql: name for name, query in Q.items()}


class Recording:
    """A pool that notes the name of every named query run through it."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.ran: list[str] = []

    def _note(self, sql: str) -> None:
        self.ran.append(NAMES.get(sql, sql))

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._note(sql)
        return await self._pool.fetch(sql, *args, **kwargs)

    async def fetchrow(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._note(sql)
        return await self._pool.fetchrow(sql, *args, **kwargs)

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._note(sql)
        return await self._pool.fetchval(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def take(self) -> list[str]:
        ran, self.ran = self.ran, []
        return ran


def cid(i: int) -> str:
    return f"1f0c0000-0000-6000-8000-{i:012d}"


async def put(
    saver: AsyncpgSaver, thread_id: str, checkpoint_ns: str, i: int, **metadata: Any
) -> None:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = cid(i)
    checkpoint["channel_values"] = {"n": i, "notes": [thread_id, i]}
    versions = {
        "n": saver.get_next_version(None, None),
        "notes": saver.get_next_version(None, None),
    }
    checkpoint["channel_versions"] = versions
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}}
    await saver.aput(config, checkpoint, metadata, versions)  # type: ignore[arg-type]


@pytest.fixture
async def recorded(pool: Any) -> AsyncIterator[tuple[AsyncpgSaver, Recording]]:
    """A saver on a recording pool, with thread "t" (checkpoints 1-6: the root namespace and
    a subgraph's, interleaved) and thread "u" (checkpoints 7-8), runs r1 and r2 in both."""
    recording = Recording(pool)
    saver = AsyncpgSaver(recording)  # type: ignore[arg-type]
    for i in range(1, 7):
        ns = "" if i % 2 else "child:1"
        await put(saver, "t", ns, i, source="input" if i in (1, 5) else "loop", run_id="r1")
    await put(saver, "u", "", 7, source="input", run_id="r1")
    await put(saver, "u", "", 8, source="loop", run_id="r2")
    recording.take()
    yield saver, recording


def ids(tuples: list[Any]) -> list[int]:
    return [int(t.config["configurable"]["checkpoint_id"].rsplit("-", 1)[1]) for t in tuples]


async def test_saver_get_tuple_with_a_thread_id_only_reads_the_latest_by_key(
    recorded: Any,
) -> None:
    saver, recording = recorded
    latest = await saver.aget_tuple({"configurable": {"thread_id": "t"}})
    assert recording.take() == ["get_checkpoint_latest"]
    assert ids([latest]) == [5]  # the root namespace's newest
    assert latest.checkpoint["channel_values"] == {"n": 5, "notes": ["t", 5]}


async def test_saver_list_with_a_thread_id_only_runs_the_threads_own_queries(
    recorded: Any,
) -> None:
    saver, recording = recorded
    thread = {"configurable": {"thread_id": "t"}}
    every = [t async for t in saver.alist(thread)]
    assert recording.take() == ["list_checkpoints_of_thread"]
    assert ids(every) == [6, 5, 4, 3, 2, 1]  # both namespaces, newest first
    assert {t.config["configurable"]["checkpoint_ns"] for t in every} == {"", "child:1"}
    assert every[1].checkpoint["channel_values"] == {"n": 5, "notes": ["t", 5]}

    page = [t async for t in saver.alist(thread, before=every[1].config, limit=2)]
    assert recording.take() == ["list_checkpoints_of_thread_before"]
    assert ids(page) == [4, 3]


async def test_saver_list_by_metadata_runs_a_query_per_cursor_and_one_across_threads(
    recorded: Any,
) -> None:
    saver, recording = recorded
    root = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    inputs = [t async for t in saver.alist(root, filter={"source": "input"})]
    assert recording.take() == ["list_checkpoints_by_metadata"]
    assert ids(inputs) == [5, 1]
    older = [
        t async for t in saver.alist(root, filter={"source": "input"}, before=inputs[0].config)
    ]
    assert recording.take() == ["list_checkpoints_by_metadata_before"]
    assert ids(older) == [1]

    run = [t async for t in saver.alist(None, filter={"run_id": "r1"})]
    assert recording.take() == ["list_checkpoints_of_owner_by_metadata"]
    assert ids(run) == [7, 6, 5, 4, 3, 2, 1]  # every thread's, newest first
    assert ids([t async for t in saver.alist(None, filter={"run_id": "r1"}, limit=2)]) == [7, 6]


async def test_saver_list_of_rarer_searches_in_a_thread_stays_in_the_thread(
    recorded: Any,
) -> None:
    saver, recording = recorded
    one = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": cid(3)}}
    assert ids([t async for t in saver.alist(one)]) == [3]
    assert recording.take() == ["list_checkpoints_of_thread_filtered"]
    thread = {"configurable": {"thread_id": "t"}}
    inputs = [t async for t in saver.alist(thread, filter={"source": "input"})]
    assert recording.take() == ["list_checkpoints_of_thread_filtered"]
    assert ids(inputs) == [5, 1]


async def test_saver_list_across_threads_with_a_cursor_runs_the_catch_all(recorded: Any) -> None:
    saver, recording = recorded
    before = {"configurable": {"thread_id": "u", "checkpoint_ns": "", "checkpoint_id": cid(7)}}
    older = [t async for t in saver.alist(None, before=before, limit=3)]
    assert recording.take() == ["list_checkpoints_of_owner_filtered"]
    assert ids(older) == [6, 5, 4]


# --- the thread row a save touches ------------------------------------------------------------


def checkpoint_put(thread_id: str, i: int) -> CheckpointPut:
    return CheckpointPut(
        thread_id=thread_id,
        checkpoint_ns="",
        checkpoint_id=cid(i),
        parent_checkpoint_id=None,
        checkpoint={"v": 4, "id": cid(i), "channel_values": {"n": i}, "channel_versions": {}},
        metadata={"step": i},
        owner=NO_OWNER,
    )


async def thread_row(conn: Any, thread_id: str) -> tuple[str, datetime]:
    row = await conn.fetchrow(
        "SELECT ctid::text, updated_at FROM threads WHERE thread_id = $1 AND owner = $2",
        thread_id,
        NO_OWNER,
    )
    return row["ctid"], row["updated_at"]


async def test_saves_within_a_second_leave_the_thread_row_as_it_is(pool: Any) -> None:
    # updated_at is indexed: bumping it on every save made a new row version (never a HOT
    # update) and new index entries each time. A save leaves a row updated less than a second
    # ago as it is (dated ahead here, so that the test does not depend on the clock).
    async with pool.acquire() as conn:
        await checkpoints.upsert_checkpoint_batch(conn, checkpoints=[checkpoint_put("t", 1)])
        await conn.execute("UPDATE threads SET updated_at = now() + interval '1 hour'")
        recent = await thread_row(conn, "t")
        await checkpoints.upsert_checkpoint_batch(conn, checkpoints=[checkpoint_put("t", 2)])
        assert await thread_row(conn, "t") == recent  # same row version, same updated_at

        await conn.execute("UPDATE threads SET updated_at = now() - interval '2 seconds'")
        old = await thread_row(conn, "t")
        await checkpoints.upsert_checkpoint_batch(conn, checkpoints=[checkpoint_put("t", 3)])
        bumped = await thread_row(conn, "t")
        assert bumped[1] > old[1]
        assert await conn.fetchval("SELECT count(*) FROM checkpoints") == 3


async def test_a_save_that_does_not_bump_still_locks_the_thread_row(pool: Any) -> None:
    # A prune locks its threads' rows to wait for the saves under way: a save must hold its
    # thread's row lock until it commits, bump or not.
    async with pool.acquire() as saving, pool.acquire() as other:
        await checkpoints.upsert_checkpoint_batch(saving, checkpoints=[checkpoint_put("t", 1)])
        async with saving.transaction():
            await checkpoints.upsert_checkpoint_batch(saving, checkpoints=[checkpoint_put("t", 2)])
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.execute(
                    "SELECT 1 FROM threads WHERE thread_id = 't' FOR NO KEY UPDATE NOWAIT"
                )
