"""AsyncpgSaver's group commit: saves made at once share commits, each call still returns only
once its rows are committed, an error reaches only the call that caused it, and a lost
connection is replaced."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from dal.errors import InvalidInput, Unavailable
from dal.gateways import checkpoints
from dal.langgraph import AsyncpgSaver


def config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def put(saver: AsyncpgSaver, thread_id: str, **metadata: Any) -> str:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"notes": [thread_id], "n": 1}
    versions = {"notes": saver.get_next_version(None, None), "n": "1"}
    checkpoint["channel_versions"] = versions
    saved = await saver.aput(config(thread_id), checkpoint, metadata, versions)
    checkpoint_id: str = saved["configurable"]["checkpoint_id"]
    return checkpoint_id


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(checkpoints, writes) of every statement the group commit sends."""
    sent: list[tuple[int, int]] = []
    real = checkpoints.upsert_checkpoint_batch

    async def counting(db: Any, **kwargs: Any) -> int:
        sent.append((len(kwargs.get("checkpoints", ())), len(kwargs.get("writes", ()))))
        return await real(db, **kwargs)

    monkeypatch.setattr(checkpoints, "upsert_checkpoint_batch", counting)
    return sent


async def test_saves_made_at_once_share_commits_and_are_all_stored(
    pool: Any, batches: list[tuple[int, int]]
) -> None:
    saver = AsyncpgSaver(pool)
    threads = [f"t-{i}" for i in range(40)]
    ids = await asyncio.gather(*(put(saver, t, step=1) for t in threads))
    writes = [
        saver.aput_writes(config(t, i), [("notes", [t, "w"]), ("n", 2)], task_id="task")
        for t, i in zip(threads, ids, strict=True)
    ]
    await asyncio.gather(*writes)
    assert sum(c for c, _ in batches) == 40 and sum(w for _, w in batches) == 40
    assert len(batches) < 20  # 80 saves; at most 2 committers, each taking all that wait
    for thread, checkpoint_id in zip(threads, ids, strict=True):
        stored = await saver.aget_tuple(config(thread))
        assert stored is not None
        assert stored.config["configurable"]["checkpoint_id"] == checkpoint_id
        assert stored.checkpoint["channel_values"] == {"notes": [thread], "n": 1}
        assert stored.pending_writes == [("task", "notes", [thread, "w"]), ("task", "n", 2)]


async def test_a_save_returns_only_once_committed(pool: Any, database_url: str) -> None:
    saver = AsyncpgSaver(pool)
    checkpoint_id = await put(saver, "durable")
    # Another connection (not the pool's) sees it at once.
    other = await asyncpg.connect(database_url)
    try:
        stored = await other.fetchval(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = 'durable'"
        )
    finally:
        await other.close()
    assert stored == checkpoint_id


async def test_a_bad_save_fails_alone_in_its_batch(
    pool: Any, batches: list[tuple[int, int]]
) -> None:
    saver = AsyncpgSaver(pool)
    # JSON cannot hold an integer beyond 64 bits: that checkpoint's metadata is refused.
    results = await asyncio.gather(
        put(saver, "good-1"),
        put(saver, "bad", note=2**70),
        put(saver, "good-2"),
        return_exceptions=True,
    )
    assert isinstance(results[1], InvalidInput)
    assert all(isinstance(r, str) for r in (results[0], results[2])), results
    assert await saver.aget_tuple(config("good-1")) is not None
    assert await saver.aget_tuple(config("good-2")) is not None
    assert await saver.aget_tuple(config("bad")) is None
    assert max(c for c, _ in batches) >= 2  # they did go together first


async def test_a_lost_connection_fails_its_saves_then_the_saver_recovers(
    pool: Any, database_url: str
) -> None:
    saver = AsyncpgSaver(pool)
    await put(saver, "before")
    admin = await asyncpg.connect(database_url)
    try:
        # Every pooled connection of the saver dies, as in a server restart.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'mnemo' AND datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    outcomes = await asyncio.gather(
        *(put(saver, f"during-{i}") for i in range(3)), return_exceptions=True
    )
    # Each call saved (a batch whose connection died goes again on another one), or says the
    # database is unavailable; never a driver error.
    assert all(isinstance(o, str | Unavailable) for o in outcomes), outcomes
    # The pool replaces dead connections: saves work again without any restart.
    for attempt in range(20):
        try:
            await put(saver, "after")
            break
        except Unavailable:
            await asyncio.sleep(0.05 * attempt)
    assert await saver.aget_tuple(config("after")) is not None
