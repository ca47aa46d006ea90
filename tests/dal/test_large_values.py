"""Values past PostgreSQL's program limits (SQLSTATE class 54, e.g. a B-tree entry over about
2,700 bytes): the run id index holds a run id of any length; a value that does hit a limit is
InvalidInput (422 over HTTP), not a driver error. (Keys the saver writes are checked before
they reach an index: tests/dal/test_langgraph_keys.py.)"""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import pytest

from dal.database import translating
from dal.errors import InvalidInput
from dal.langgraph import AsyncpgSaver
from tests.support import save_checkpoint


def incompressible(chars: int) -> str:
    """Random text: a B-tree entry of it cannot be compressed below the limit."""
    return secrets.token_urlsafe(chars)[:chars]


def config(thread_id: str, checkpoint_ns: str = "") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}}


async def put(
    saver: AsyncpgSaver,
    thread_id: str,
    values: dict[str, Any],
    checkpoint_ns: str = "",
    **metadata: Any,
) -> str:
    return await save_checkpoint(
        saver, thread_id, values, checkpoint_ns=checkpoint_ns, metadata=metadata
    )


async def test_translate_makes_a_program_limit_error_invalid_input(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE keys (key text PRIMARY KEY) ON COMMIT DROP")
            with pytest.raises(InvalidInput, match="limit") as caught, translating():
                await conn.execute("INSERT INTO keys VALUES ($1)", incompressible(4000))
            assert isinstance(caught.value.__cause__, asyncpg.ProgramLimitExceededError)
            assert caught.value.__cause__.sqlstate == "54000"
    finally:
        await conn.close()


async def test_saver_put_with_a_run_id_over_the_btree_limit_is_saved_and_deleted_by_run(
    pool: Any,
) -> None:
    saver = AsyncpgSaver(pool)
    run_id, other_run = incompressible(4000), incompressible(4000)
    await put(saver, "t-1", {"n": 1}, run_id=run_id, source="loop", step=0)
    kept = await put(saver, "t-1", {"n": 2}, run_id=other_run, source="loop", step=1)

    latest = await saver.aget_tuple(config("t-1"))
    assert latest is not None and latest.metadata["run_id"] == other_run

    await saver.adelete_for_runs([run_id])
    left = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config("t-1"))]
    assert left == [kept]
