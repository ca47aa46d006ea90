"""Retention (dal.usecases.retention): each policy at its boundary on a clock the test sets,
keep-N leaving what a resumed graph needs (delta channels included), batches bounded, dry runs
changing nothing, overrides, writers running beside a run, and the scheduler's one runner."""

from __future__ import annotations

import asyncio
import json
import operator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from dal.database import connect
from dal.gateways import retention as gateway
from dal.langgraph import AsyncpgSaver
from dal.records.messages import MessageDraft
from dal.records.retention import RetentionPolicy, RetentionReport
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import retention
from dal.usecases.retention import RetentionScheduler, run_retention
from tests.dal.conftest import make_conversation, make_user
from tests.dal.test_langgraph_delta import builder as delta_builder
from tests.support import save_checkpoint, wait_until
from tests.test_cli import mnemo
from tests.test_session_state import SessionRun

TABLES = (
    "threads",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "conversations",
    "messages",
    "conversation_events",
)
US = timedelta(microseconds=1)


class Steps(TypedDict):
    steps: Annotated[list[str], operator.add]
    turn: int


def steps_graph() -> StateGraph[Steps]:
    """a -> b -> c, each adding a step: 4 checkpoints a turn (input, a, b, c)."""

    def node(name: str) -> Any:
        def run(state: Steps) -> dict[str, Any]:
            return {"steps": [f"{name}@{state.get('turn', 0)}"]}

        return run

    graph = StateGraph(Steps)
    for name in "abc":
        graph.add_node(name, node(name))
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    return graph


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def turns(graph: Any, thread_id: str, numbers: range, key: str = "steps") -> None:
    for n in numbers:
        await graph.ainvoke({key: [f"user@{n}"], "turn": n}, config(thread_id))


async def counts(pool: Any) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


async def checkpoints_of(pool: Any, thread_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM checkpoints WHERE thread_id = $1", thread_id)
    )


async def dangling(pool: Any) -> tuple[int, int]:
    """(blobs no checkpoint references, writes whose checkpoint is gone)."""
    blobs = await pool.fetchval(
        """SELECT count(*) FROM checkpoint_blobs AS b
            WHERE NOT EXISTS (SELECT 1 FROM checkpoints AS c
                               WHERE c.thread_id = b.thread_id AND c.owner = b.owner
                                 AND c.checkpoint_ns = b.checkpoint_ns
                                 AND c.checkpoint -> 'channel_versions' ->> b.channel
                                     = b.version)"""
    )
    writes = await pool.fetchval(
        """SELECT count(*) FROM checkpoint_writes AS w
            WHERE NOT EXISTS (SELECT 1 FROM checkpoints AS c
                               WHERE c.thread_id = w.thread_id AND c.owner = w.owner
                                 AND c.checkpoint_ns = w.checkpoint_ns
                                 AND c.checkpoint_id = w.checkpoint_id)"""
    )
    return blobs, writes


async def newest_activity(pool: Any, thread_id: str) -> datetime:
    value: datetime = await pool.fetchval(
        "SELECT max(created_at) FROM checkpoints WHERE thread_id = $1", thread_id
    )
    return value


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=1)


# --- keep-N ---------------------------------------------------------------------------------


async def test_keep_checkpoints_leaves_what_a_resumed_graph_needs(
    pool: Any, settings: Settings
) -> None:
    graph = steps_graph().compile(checkpointer=AsyncpgSaver(pool))
    await turns(graph, "kept", range(4))
    reference = steps_graph().compile(checkpointer=InMemorySaver())
    await turns(reference, "kept", range(4))
    before = await checkpoints_of(pool, "kept")
    assert before > 5

    report = await run_retention(pool, RetentionPolicy(keep_checkpoints=3), now=later())

    assert await checkpoints_of(pool, "kept") == 3
    assert report.checkpoints == before - 3
    assert report.checkpoint_blobs > 0 and report.checkpoint_writes > 0
    assert await dangling(pool) == (0, 0)
    async with connect(settings) as other:  # a new process resumes it
        resumed = steps_graph().compile(checkpointer=AsyncpgSaver(other))
        assert (await resumed.aget_state(config("kept"))).values == (
            await reference.aget_state(config("kept"))
        ).values
        await turns(resumed, "kept", range(4, 6))
    await turns(reference, "kept", range(4, 6))
    assert (await graph.aget_state(config("kept"))).values == (
        await reference.aget_state(config("kept"))
    ).values
    history = [s async for s in graph.aget_state_history(config("kept"))]
    assert len(history) == await checkpoints_of(pool, "kept")  # a chain from the kept ones
    assert history[-1].parent_config is None


async def test_keep_checkpoints_of_a_delta_channel_keeps_its_chain(
    pool: Any, settings: Settings
) -> None:
    graph = delta_builder().compile(checkpointer=AsyncpgSaver(pool))
    await turns(graph, "delta", range(7), key="notes")
    reference = delta_builder().compile(checkpointer=InMemorySaver())
    await turns(reference, "delta", range(7), key="notes")
    before = await checkpoints_of(pool, "delta")

    report = await run_retention(pool, RetentionPolicy(keep_checkpoints=2), now=later())

    after = await checkpoints_of(pool, "delta")
    assert 2 <= after < before and report.checkpoints == before - after
    expected = (await reference.aget_state(config("delta"))).values
    async with connect(settings) as other:
        resumed = delta_builder().compile(checkpointer=AsyncpgSaver(other))
        assert (await resumed.aget_state(config("delta"))).values == expected
        await turns(resumed, "delta", range(7, 9), key="notes")
    await turns(reference, "delta", range(7, 9), key="notes")
    assert (await graph.aget_state(config("delta"))).values == (
        await reference.aget_state(config("delta"))
    ).values
    # Pruned again after the new turns: still whole.
    await run_retention(pool, RetentionPolicy(keep_checkpoints=2), now=later())
    assert (await graph.aget_state(config("delta"))).values == (
        await reference.aget_state(config("delta"))
    ).values


async def test_keep_checkpoints_at_its_boundary(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    for n in range(3):
        await save_checkpoint(saver, "three", {"n": f"value {n}" * 10})
    for n in range(4):
        await save_checkpoint(saver, "four", {"n": f"value {n}" * 10})
    oldest_of_four = await pool.fetchval(
        "SELECT min(checkpoint_id) FROM checkpoints WHERE thread_id = 'four'"
    )
    report = await run_retention(pool, RetentionPolicy(keep_checkpoints=3), now=later())
    assert report.checkpoints == 1
    assert await checkpoints_of(pool, "three") == 3
    assert await checkpoints_of(pool, "four") == 3
    assert not await pool.fetchval(
        "SELECT count(*) FROM checkpoints WHERE checkpoint_id = $1", oldest_of_four
    )
    # The oldest kept is now a root.
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM checkpoints"
            " WHERE thread_id = 'four' AND parent_checkpoint_id IS NULL"
        )
        >= 1
    )


async def test_keep_checkpoints_spares_checkpoints_created_after_the_runs_clock(
    pool: Any,
) -> None:
    saver = AsyncpgSaver(pool)
    for n in range(5):
        await save_checkpoint(saver, "t", {"n": n})
    clock = datetime.now(UTC) - timedelta(hours=1)  # every checkpoint is newer than the run
    report = await run_retention(pool, RetentionPolicy(keep_checkpoints=1), now=clock)
    assert report.checkpoints == 0 and await checkpoints_of(pool, "t") == 5


# --- thread TTL ------------------------------------------------------------------------------


async def test_thread_days_at_its_boundary(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    await save_checkpoint(saver, "old", {"v": ["x"] * 50}, writes=[("v", "w")])
    await save_checkpoint(saver, "old", {"v": ["y"] * 50}, writes=[("v", "w")])
    await save_checkpoint(saver, "other", {"v": ["z"] * 50})
    newest = await newest_activity(pool, "old")
    other = await newest_activity(pool, "other")
    assert other > newest
    exactly = newest + timedelta(days=7)

    kept = await run_retention(pool, RetentionPolicy(thread_days=7), now=exactly)
    assert (kept.threads, kept.checkpoints) == (0, 0)
    assert await checkpoints_of(pool, "old") == 2

    report = await run_retention(pool, RetentionPolicy(thread_days=7), now=exactly + US)
    assert report.threads == 1
    assert (report.checkpoints, report.checkpoint_writes) == (2, 2)
    assert report.checkpoint_blobs == 2
    for table in ("threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        assert not await pool.fetchval(f"SELECT count(*) FROM {table} WHERE thread_id = 'old'")
    assert await checkpoints_of(pool, "other") == 1  # newer by a few milliseconds


# --- conversations ---------------------------------------------------------------------------


async def append(pool: Any, user: User, conversation_id: Any, text: str) -> None:
    from dal.gateways import messages

    await messages.insert_message(
        pool,
        user_id=user.id,
        conversation_id=conversation_id,
        draft=MessageDraft(role="user", parts=[{"type": "text", "text": text}]),
    )


async def test_conversation_days_at_its_boundary(pool: Any) -> None:
    user = await make_user(pool)
    old = await make_conversation(pool, user, "old")
    for n in range(3):
        await append(pool, user, old.id, f"m{n}")
    recent = await make_conversation(pool, user, "recent")
    activity = await pool.fetchval("SELECT updated_at FROM conversations WHERE id = $1", old.id)
    exactly = activity + timedelta(days=30)

    kept = await run_retention(pool, RetentionPolicy(conversation_days=30), now=exactly)
    assert kept.conversations == 0

    report = await run_retention(pool, RetentionPolicy(conversation_days=30), now=exactly + US)
    assert (report.conversations, report.messages) == (1, 3)
    assert not await pool.fetchval("SELECT count(*) FROM conversations WHERE id = $1", old.id)
    assert not await pool.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1", old.id
    )
    assert await pool.fetchval("SELECT count(*) FROM conversations WHERE id = $1", recent.id)


# --- overrides -------------------------------------------------------------------------------


async def test_overrides_exempt_and_lengthen_never_shorten(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    held = await make_user(pool)
    for thread in ("plain", "exempt", "longer", "shorter"):
        for n in range(4):
            await save_checkpoint(saver, thread, {"n": n})
    for n in range(4):
        await save_checkpoint(saver, "users", {"n": n}, user_id=str(held.id))
    await pool.execute(
        """UPDATE threads SET metadata = CASE thread_id
                WHEN 'exempt' THEN '{"retention": {"keep_checkpoints": null, "ttl_days": null}}'
                WHEN 'longer' THEN '{"retention": {"keep_checkpoints": 3, "ttl_days": 10}}'
                WHEN 'shorter' THEN '{"retention": {"keep_checkpoints": 0, "ttl_days": 1}}'
                ELSE metadata END::jsonb"""
    )
    await pool.execute(
        """UPDATE users SET metadata = '{"retention": {"keep_checkpoints": null}}'
            WHERE id = $1""",
        held.id,
    )
    await run_retention(pool, RetentionPolicy(keep_checkpoints=2), now=later())
    got = {t: await checkpoints_of(pool, t) for t in ("plain", "exempt", "longer", "shorter")}
    assert got == {"plain": 2, "exempt": 4, "longer": 3, "shorter": 2}
    assert await checkpoints_of(pool, "users") == 4

    # Thread days: 5 by the setting; "longer" keeps 10, "exempt" forever.
    in_eight_days = later() + timedelta(days=8)
    await run_retention(pool, RetentionPolicy(thread_days=5), now=in_eight_days)
    left = {r["thread_id"] for r in await pool.fetch("SELECT thread_id FROM threads")}
    assert left == {"exempt", "longer"}

    user = await make_user(pool)
    keep = await make_conversation(pool, user, "keep")
    await pool.execute(
        """UPDATE conversations SET metadata = '{"retention": {"ttl_days": null}}'
            WHERE id = $1""",
        keep.id,
    )
    drop = await make_conversation(pool, user, "drop")
    report = await run_retention(
        pool, RetentionPolicy(conversation_days=1), now=later() + timedelta(days=2)
    )
    assert report.conversations >= 1
    ids = {r["id"] for r in await pool.fetch("SELECT id FROM conversations")}
    assert keep.id in ids and drop.id not in ids


async def test_with_overrides_off_the_settings_bind_every_row(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    held = await make_user(pool)
    for n in range(4):
        await save_checkpoint(saver, "exempt", {"n": n})
        await save_checkpoint(saver, "users", {"n": n}, user_id=str(held.id))
    await pool.execute(
        """UPDATE threads SET metadata =
                '{"retention": {"keep_checkpoints": null, "ttl_days": null}}'
            WHERE thread_id = 'exempt'"""
    )
    await pool.execute(
        """UPDATE users SET metadata =
                '{"retention": {"keep_checkpoints": null, "thread_ttl_days": null,
                                "conversation_ttl_days": null}}'
            WHERE id = $1""",
        held.id,
    )
    kept = await make_conversation(pool, held, "exempt by its user")
    await pool.execute(
        """UPDATE conversations SET metadata = '{"retention": {"ttl_days": null}}'
            WHERE id = $1""",
        kept.id,
    )
    settings = Settings(
        database_url="postgresql://unused",
        retention_keep_checkpoints=2,
        retention_overrides="none",
    )
    policy = retention.policy_of(settings)
    assert policy == RetentionPolicy(keep_checkpoints=2, overrides=False)
    # Honoured by default: nothing to trim. Off: both threads trimmed to the setting.
    assert (await run_retention(pool, RetentionPolicy(keep_checkpoints=2))).checkpoints == 0
    dry = await run_retention(pool, policy, now=later(), dry_run=True)
    assert dry.checkpoints == 4
    await run_retention(pool, policy, now=later())
    assert {await checkpoints_of(pool, t) for t in ("exempt", "users")} == {2}

    in_eight_days = later() + timedelta(days=8)
    report = await run_retention(
        pool,
        RetentionPolicy(thread_days=5, conversation_days=5, overrides=False),
        now=in_eight_days,
    )
    assert report.threads == 2 and report.conversations == 1
    assert await pool.fetchval("SELECT count(*) FROM threads") == 0
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 0


# --- batches, dry runs -----------------------------------------------------------------------


async def many_threads(pool: Any, threads: int, each: int) -> None:
    saver = AsyncpgSaver(pool)
    for t in range(threads):
        for n in range(each):
            await save_checkpoint(
                saver, f"t{t}", {"a": [f"a{n}"] * 20, "b": [n]}, writes=[("a", n)]
            )


async def test_statements_touch_at_most_the_batch(pool: Any) -> None:
    await many_threads(pool, threads=3, each=8)
    threads = await gateway.list_threads_for_trimming_locked(
        pool,
        keep_checkpoints=1,
        thread_days=None,
        now=later(),
        after=("", retention._NIL),
        batch=10,
    )
    assert len(threads) == 3
    async with pool.acquire() as conn, conn.transaction():
        assert (
            await gateway.delete_excess_checkpoints(conn, threads=threads, now=later(), batch=5)
            == 5
        )
        swept = await gateway.delete_trim_leftovers(conn, threads=threads, batch=4)
        assert (swept.blobs, swept.writes) == (4, 4)
    expired = await gateway.list_expired_threads_locked(
        pool,
        thread_days=1,
        now=later() + timedelta(days=2),
        after=(retention._EPOCH, "", retention._NIL),
        batch=2,
    )
    assert len(expired) == 2
    async with pool.acquire() as conn, conn.transaction():
        got = await gateway.delete_expired_thread_rows(conn, threads=expired, batch=6)
        assert got == (6, 6, 6)
        assert await gateway.delete_expired_threads(conn, threads=expired) == 0  # rows left


async def test_a_run_in_batches_deletes_at_most_a_batch_of_each_table_per_batch(
    pool: Any,
) -> None:
    await many_threads(pool, threads=3, each=8)
    # A whole run in batches of 4: no batch deletes more than 4 rows of a table.
    seen: list[RetentionReport] = []
    report = await run_retention(
        pool, RetentionPolicy(keep_checkpoints=2), now=later(), batch=4, progress=seen.append
    )
    assert report.checkpoints == 3 * 6 and len(seen) == report.batches > 3
    previous = None
    for step in seen:
        if previous is not None:
            for kind in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
                assert getattr(step, kind) - getattr(previous, kind) <= 4, kind
        previous = step
    assert await dangling(pool) == (0, 0)
    assert {await checkpoints_of(pool, f"t{t}") for t in range(3)} == {2}


@pytest.mark.parametrize("pause", [0.0, 2.0])
async def test_a_run_rests_after_each_batch_in_proportion_to_the_batch(
    pool: Any, pause: float
) -> None:
    await many_threads(pool, threads=3, each=4)
    seen: list[RetentionReport] = []
    report = await run_retention(
        pool,
        RetentionPolicy(keep_checkpoints=1),
        now=later(),
        batch=2,
        pause=pause,
        progress=seen.append,
    )
    assert report.batches == len(seen) >= 3
    working = report.seconds - report.rested_seconds
    assert working > 0
    # Each rest is `pause` times its batch: the rests add up to `pause` times the batches'
    # time, which is most of the rest of the wall time (the last transaction, which finds
    # nothing more and is not rested after, and the callbacks are the remainder).
    if pause:
        assert pause * working * 0.5 <= report.rested_seconds <= pause * working
    else:
        assert report.rested_seconds == 0
    assert [r.seconds for r in seen] == sorted(r.seconds for r in seen)


async def test_a_pause_out_of_range_is_refused(pool: Any) -> None:
    for pause in (-1.0, 101.0):
        with pytest.raises(ValueError, match="pause"):
            await run_retention(pool, RetentionPolicy(keep_checkpoints=1), pause=pause)


async def test_dry_run_changes_nothing_and_counts_what_a_run_deletes(pool: Any) -> None:
    await many_threads(pool, threads=4, each=6)
    user = await make_user(pool)
    for n in range(3):
        conversation = await make_conversation(pool, user, f"c{n}")
        await append(pool, user, conversation.id, "hello")
    clock = later() + timedelta(days=3)
    policy = RetentionPolicy(thread_days=2, keep_checkpoints=2, conversation_days=2)
    await pool.execute(
        "UPDATE threads SET updated_at = now() + interval '2 days' WHERE thread_id = 't0'"
    )
    await pool.execute(
        "UPDATE checkpoints SET created_at = now() + interval '2 days' WHERE thread_id = 't0'"
    )
    before = await counts(pool)

    dry = await run_retention(pool, policy, now=clock, batch=3, dry_run=True)
    assert await counts(pool) == before
    assert dry.dry_run and dry.threads == 3 and dry.conversations == 3

    real = await run_retention(pool, policy, now=clock, batch=3)
    timing = {"dry_run", "batches", "seconds", "rested_seconds"}
    assert real.model_dump(exclude=timing) == dry.model_dump(exclude=timing)
    assert (await counts(pool))["checkpoints"] == before["checkpoints"] - real.checkpoints
    assert await checkpoints_of(pool, "t0") == 2


# --- beside writers --------------------------------------------------------------------------


async def test_a_run_beside_a_graph_writing_to_the_thread_loses_nothing_written_after_it_started(
    pool: Any,
) -> None:
    await many_threads(pool, threads=30, each=3)
    graph = steps_graph().compile(checkpointer=AsyncpgSaver(pool))
    reference = steps_graph().compile(checkpointer=InMemorySaver())
    await turns(graph, "t7", range(2))
    await turns(reference, "t7", range(2))
    started = datetime.now(UTC)
    seen: set[str] = set()
    running = True

    async def write() -> None:
        n = 2
        while running or n < 6:
            await turns(graph, "t7", range(n, n + 1))
            await turns(reference, "t7", range(n, n + 1))
            rows = await pool.fetch(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = 't7' AND created_at > $1",
                started,
            )
            seen.update(r["checkpoint_id"] for r in rows)
            n += 1

    writer = asyncio.create_task(write())
    try:
        for _ in range(3):
            await run_retention(pool, RetentionPolicy(keep_checkpoints=1), now=started, batch=2)
    finally:
        running = False
        await asyncio.wait_for(writer, 60)
    # A batch that found the thread held by the writer (SKIP LOCKED) left its sweeping to the
    # next run: this one, with nobody writing, finishes it.
    await run_retention(pool, RetentionPolicy(keep_checkpoints=1), now=started, batch=2)
    left = {
        r["checkpoint_id"]
        for r in await pool.fetch("SELECT checkpoint_id FROM checkpoints WHERE thread_id = 't7'")
    }
    assert seen and seen <= left
    assert (await graph.aget_state(config("t7"))).values == (
        await reference.aget_state(config("t7"))
    ).values
    assert await dangling(pool) == (0, 0)


async def locked_threads(pool: Any) -> int:
    """How many threads another transaction holds now (those a save would wait for)."""
    async with pool.acquire() as other, other.transaction():
        free = await other.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM threads FOR NO KEY UPDATE SKIP LOCKED) AS x"
        )
        total = await other.fetchval("SELECT count(*) FROM threads")
    return int(total - free)


async def test_keep_n_holds_one_thread_per_transaction_and_ranks_each_once(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await many_threads(pool, threads=4, each=6)
    ranked: list[str] = []
    held: list[int] = []
    real = gateway.delete_excess_checkpoints

    async def ranking(conn: Any, *, threads: Any, now: datetime, batch: int) -> int:
        ranked.extend(t.thread_id for t in threads)
        held.append(await locked_threads(pool))  # while the run's transaction is open
        return await real(conn, threads=threads, now=now, batch=batch)

    monkeypatch.setattr(gateway, "delete_excess_checkpoints", ranking)
    report = await run_retention(pool, RetentionPolicy(keep_checkpoints=2), now=later(), batch=100)
    assert report.checkpoints == 4 * 4
    # A save waits for one thread's transaction at most: the others are free meanwhile.
    assert held == [1, 1, 1, 1]
    assert ranked == ["t0", "t1", "t2", "t3"]  # each ranked once, never again once trimmed

    # A thread with more to delete than a batch: taken up again, alone, until trimmed.
    ranked.clear()
    held.clear()
    for n in range(7):
        await save_checkpoint(AsyncpgSaver(pool), "t1", {"a": [f"x{n}"], "b": [n]})
    seen: list[RetentionReport] = []
    report = await run_retention(
        pool, RetentionPolicy(keep_checkpoints=2), now=later(), batch=3, progress=seen.append
    )
    # 14 blobs in batches of 3: five transactions, each holding t1 alone (the others hold
    # no more checkpoints than they keep: no transaction of their own).
    assert report.checkpoints == 7 and report.checkpoint_blobs == 14
    assert ranked == ["t1"] * 5 and held == [1] * 5 and report.batches == 5
    assert await checkpoints_of(pool, "t1") == 2 and await dangling(pool) == (0, 0)


async def test_a_thread_expiring_batch_by_batch_resumes_whole_between_batches(
    pool: Any, settings: Settings
) -> None:
    graph = steps_graph().compile(checkpointer=AsyncpgSaver(pool))
    references = {name: steps_graph().compile(checkpointer=InMemorySaver()) for name in TWO}
    for name in TWO:
        await turns(graph, name, range(5))
        await turns(references[name], name, range(5))
    await turns(graph, "gone", range(2))
    for table, column in (("threads", "updated_at"), ("checkpoints", "created_at")):
        await pool.execute(f"UPDATE {table} SET {column} = {column} - interval '3 days'")
    await pool.execute(  # "revived" expires first, then "old", then "gone"
        "UPDATE threads SET updated_at = updated_at - interval '1 hour' WHERE thread_id = $1",
        "revived",
    )
    start = await checkpoints_of(pool, "revived")
    left: list[int] = []
    revived = False

    async with connect(settings) as other:  # another process resumes them between batches
        resumed = steps_graph().compile(checkpointer=AsyncpgSaver(other))

        async def between(report: RetentionReport) -> None:
            nonlocal revived
            for name in TWO:
                state = (await resumed.aget_state(config(name))).values
                expected = (await references[name].aget_state(config(name))).values
                row = await pool.fetchval("SELECT count(*) FROM threads WHERE thread_id = $1", name)
                # Whole, or gone with its row: never part of it.
                assert state == expected or (name == "old" and not state and not row), name
            n = await checkpoints_of(pool, "revived")
            left.append(n)
            if not revived and n < start:  # part-way: a save revives it
                await turns(resumed, "revived", range(5, 6))
                await turns(references["revived"], "revived", range(5, 6))
                revived = True

        report = await run_retention(
            pool, RetentionPolicy(thread_days=1), now=datetime.now(UTC), batch=3, progress=between
        )
    assert revived and report.threads == 2  # "old" and "gone", whole
    for name in ("old", "gone"):
        for table in ("threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            assert not await pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE thread_id = $1", name
            )
    # "revived" lives on from its full state, with a coherent, shorter history.
    assert (await graph.aget_state(config("revived"))).values == (
        await references["revived"].aget_state(config("revived"))
    ).values
    history = [s async for s in graph.aget_state_history(config("revived"))]
    assert len(history) == await checkpoints_of(pool, "revived") < start + 4
    assert history[-1].parent_config is None
    # No blob it needs is gone and none is left over; pending writes of checkpoints trimmed
    # before the save revived it may be (no checkpoint names them: never read).
    assert (await dangling(pool))[0] == 0


TWO = ("revived", "old")


# --- the scheduler ---------------------------------------------------------------------------


async def test_two_schedulers_one_runs_until_it_stops(pool: Any, settings: Settings) -> None:
    saver = AsyncpgSaver(pool)
    for n in range(3):
        await save_checkpoint(saver, "s", {"n": n})
    policy = RetentionPolicy(keep_checkpoints=1)
    async with connect(settings) as other:
        first = RetentionScheduler(pool, policy, interval=3600)
        second = RetentionScheduler(other, policy, interval=3600)
        try:
            report = await first.run_once(now=later())
            assert report is not None and report.checkpoints == 2
            assert await second.run_once(now=later()) is None
            assert first.is_runner and not second.is_runner
            await first.stop()
            assert not first.is_runner
            assert await second.run_once(now=later()) is not None
        finally:
            await first.stop()
            await second.stop()


async def test_the_scheduler_runs_in_the_background_once_started(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    for n in range(3):
        await save_checkpoint(saver, "bg", {"n": n})
    scheduler = RetentionScheduler(pool, RetentionPolicy(keep_checkpoints=1), interval=0.05)
    scheduler.start()
    try:
        async with asyncio.timeout(30):
            while await checkpoints_of(pool, "bg") > 1:  # noqa: ASYNC110 (a table, no event)
                await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
    assert not scheduler.is_runner


def test_policy_of_settings_is_off_by_default(settings: Settings) -> None:
    assert not retention.policy_of(Settings()).enabled
    on = settings.model_copy(update={"retention_thread_days": 3, "retention_keep_checkpoints": 5})
    assert retention.policy_of(on) == RetentionPolicy(thread_days=3, keep_checkpoints=5)


async def test_run_retention_refuses_a_batch_out_of_bounds(pool: Any) -> None:
    with pytest.raises(ValueError):
        await run_retention(pool, RetentionPolicy(keep_checkpoints=1), batch=0)


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Retention, for tests/test_session_state.py: every policy, dry and real, and a
    scheduler's lock (on its own connection)."""
    policy = RetentionPolicy(thread_days=1, keep_checkpoints=1, conversation_days=1)
    saver = AsyncpgSaver(pool)
    await run.one("save", lambda: save_checkpoint(saver, "exercise", {"n": 1}))
    await run.one("save", lambda: save_checkpoint(saver, "exercise", {"n": 2}))
    clock = later() + timedelta(days=2)
    scheduler = RetentionScheduler(pool, policy, interval=3600)
    keep = RetentionPolicy(keep_checkpoints=1)
    await run(
        [
            ("run_retention keep dry", lambda: run_retention(pool, keep, dry_run=True)),
            ("run_retention keep", lambda: run_retention(pool, keep, now=later())),
            ("run_retention dry", lambda: run_retention(pool, policy, now=clock, dry_run=True)),
            ("run_retention", lambda: run_retention(pool, policy, now=clock)),
            ("scheduler run_once", lambda: scheduler.run_once(now=clock)),
            ("scheduler stop", scheduler.stop),
        ]
    )


# --- the command and the app's scheduler -----------------------------------------------------


async def test_mnemo_retention_run_dry_then_real(pool: Any, settings: Settings) -> None:
    saver = AsyncpgSaver(pool)
    for n in range(4):
        await save_checkpoint(saver, "cli", {"n": [n]})
    env = {"DATABASE_URL": str(settings.database_url)}
    before = await counts(pool)

    dry = await asyncio.to_thread(
        mnemo, "retention", "run", "--keep-checkpoints", "1", "--dry-run", env=env
    )
    assert dry.returncode == 0, dry.stderr
    answer = json.loads(dry.stdout)
    assert answer["dry_run"] and answer["checkpoints"] == 3 and answer["checkpoint_blobs"] == 3
    assert answer["policy"] == {
        "thread_days": None,
        "keep_checkpoints": 1,
        "conversation_days": None,
        "overrides": True,
    }
    assert "would delete" in dry.stderr
    assert await counts(pool) == before

    done = await asyncio.to_thread(
        mnemo, "retention", "run", "--batch", "2", env={**env, "RETENTION_KEEP_CHECKPOINTS": "1"}
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checkpoints"] == 3
    assert "deleted 0 threads, 2 checkpoints" in done.stderr  # the first batch of 2
    assert await checkpoints_of(pool, "cli") == 1

    bad = await asyncio.to_thread(mnemo, "retention", "run", "--batch", "0", env=env)
    assert bad.returncode == 2 and "--batch" in bad.stderr and bad.stdout == ""
    nothing = await asyncio.to_thread(mnemo, "retention", "run", env=env)
    assert nothing.returncode == 0 and "no retention policy is set" in nothing.stderr


def test_the_app_runs_retention_while_it_serves(settings: Settings) -> None:
    from starlette.testclient import TestClient

    from app import create_app

    async def seed() -> None:
        async with connect(settings) as db:
            saver = AsyncpgSaver(db)
            for n in range(3):
                await save_checkpoint(saver, "served", {"n": [n]})

    async def left() -> int:
        async with connect(settings) as db:
            return await checkpoints_of(db, "served")

    asyncio.run(seed())
    on = settings.model_copy(
        update={"retention_keep_checkpoints": 1, "retention_interval_seconds": 0.05}
    )
    with TestClient(create_app(on)):
        wait_until(lambda: asyncio.run(left()) == 1, what="the scheduler's run")
