"""A thread with 1,000 checkpoints (among 40,000: the same 20 thread ids for two owners):
history, cursor and metadata filter are served by indexes, under custom and generic plans,
and return the right rows, of the right owner."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.gateways.checkpoints import NO_OWNER
from dal.langgraph import AsyncpgSaver
from dal.queries import Q, Query
from dal.settings import Settings
from tests.dal.test_plans import assert_index_scan, explain
from tests.support import Databases

THREADS, PER_THREAD = 20, 1000
LONG = "thread-0"
# The other owner of the same thread ids (its checkpoints' values are negative).
OTHER = "0191a9f4-0000-7000-8000-000000000001"


def checkpoint_id(i: int) -> str:
    return f"1f0{i:013d}"


SEED = f"""
    CREATE TEMP TABLE owners (owner uuid, sign int);
    INSERT INTO owners VALUES ('{NO_OWNER}', 1), ('{OTHER}', -1);
    INSERT INTO threads (thread_id, owner)
    SELECT 'thread-' || t, o.owner FROM generate_series(0, {THREADS - 1}) AS t, owners AS o;
    INSERT INTO checkpoints (thread_id, owner, checkpoint_ns, checkpoint_id,
                             parent_checkpoint_id, checkpoint, metadata)
    SELECT 'thread-' || t, o.owner, '', '1f0' || lpad(i::text, 13, '0'),
           CASE WHEN i > 0 THEN '1f0' || lpad((i - 1)::text, 13, '0') END,
           jsonb_build_object('v', 4, 'id', '1f0' || lpad(i::text, 13, '0'),
                              'ts', '2026-01-01T00:00:00+00:00',
                              'channel_values', jsonb_build_object('n', o.sign * i),
                              'channel_versions', jsonb_build_object('n', i::text),
                              'versions_seen', '{{}}'::jsonb),
           jsonb_build_object('source', CASE WHEN i % 100 = 0 THEN 'input' ELSE 'loop' END,
                              'step', i, 'run_id', 'run-' || t || '-' || (i / 10))
      FROM generate_series(0, {THREADS - 1}) AS t, generate_series(0, {PER_THREAD - 1}) AS i,
           owners AS o;
    ANALYZE;
"""
# A pending write after every checkpoint, and a blob of channel "other" at every checkpoint's
# id taken as a version (40,000 of each).
WRITES_AND_BLOBS = """
    INSERT INTO checkpoint_writes (thread_id, owner, checkpoint_ns, checkpoint_id, task_id,
                                   idx, channel, type, blob)
    SELECT thread_id, owner, checkpoint_ns, checkpoint_id, 'task', 0, 'n', 'msgpack', '\\x00'
      FROM checkpoints;
    INSERT INTO checkpoint_blobs (thread_id, owner, checkpoint_ns, channel, version, type,
                                  blob)
    SELECT thread_id, owner, checkpoint_ns, 'other', checkpoint_id, 'msgpack', '\\x00'
      FROM checkpoints;
    UPDATE checkpoints
       SET checkpoint = jsonb_set(checkpoint, '{channel_versions,other}',
                                  to_jsonb(checkpoint_id));
    ANALYZE;
"""


def seed(url: str, *scripts: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for script in scripts:
            conn.execute(script.encode())  # several statements: the simple query protocol


# Seeded once per module (a second or two each): the tests only read, or undo what they write.
@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    seed(module_database_url, SEED)
    return module_database_url


@pytest.fixture(scope="module")
def with_writes_url(databases: Databases, template_db: str) -> Iterator[str]:
    """Another database: the same checkpoints, with writes and blobs."""
    with databases.copy(template_db) as url:
        seed(url, SEED, WRITES_AND_BLOBS)
        yield url


async def _connect(url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A plain connection (no json codec: EXPLAIN output stays text) on the seeded database."""
    async for conn in _connect(seeded_url):
        yield conn


@pytest.fixture
async def with_writes(with_writes_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    async for conn in _connect(with_writes_url):
        yield conn


@pytest.fixture
def settings(seeded_url: str, tmp_path: Path) -> Settings:
    """The suite's settings, on the seeded database (for the ``pool`` fixture)."""
    return Settings(
        database_url=seeded_url, db_min_connections=1, db_max_connections=2, data_dir=tmp_path
    )


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_history_queries_use_the_primary_key(seeded: Any, generic: bool) -> None:
    cases = [
        ("get_checkpoint_latest", (NO_OWNER, LONG, "")),
        ("list_checkpoints_in_namespace", (NO_OWNER, LONG, "", 100)),
        ("list_checkpoints_in_namespace_before", (NO_OWNER, LONG, "", checkpoint_id(500), 100)),
    ]
    for name, args in cases:
        nodes = await explain(seeded, Q[name], *args, generic=generic)
        assert_index_scan(nodes, "checkpoints_pkey", "checkpoints")
        # Rows come in index order: no sort of the thread's checkpoints.
        sorts = [n["Sort Key"] for n in nodes if n["Node Type"] == "Sort"]
        assert not [k for k in sorts if any(key.endswith("checkpoint_id DESC") for key in k)], (
            name,
            sorts,
        )


async def test_cursor_is_an_index_condition(seeded: Any) -> None:
    nodes = await explain(
        seeded,
        Q["list_checkpoints_in_namespace_before"],
        NO_OWNER,
        LONG,
        "",
        checkpoint_id(500),
        100,
        generic=True,
    )
    scan = next(n for n in nodes if n.get("Index Name") == "checkpoints_pkey")
    assert "checkpoint_id <" in scan["Index Cond"]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_metadata_filter_is_served_by_an_index(seeded: Any, generic: bool) -> None:
    nodes = await explain(
        seeded,
        Q["list_checkpoints_by_metadata"],
        NO_OWNER,
        LONG,
        "",
        '{"source": "input"}',
        5,
        generic=generic,
    )
    used = {n.get("Index Name") for n in nodes} & set(Q["list_checkpoints_by_metadata"].uses)
    assert used, nodes
    assert not any(
        n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "checkpoints" for n in nodes
    )


async def test_delete_for_runs_uses_the_run_id_index(seeded: Any) -> None:
    async with seeded.transaction():
        nodes = await explain(
            seeded, Q["delete_checkpoints_for_runs"], NO_OWNER, "{run-3-7}", generic=True
        )
    assert_index_scan(nodes, "checkpoints_run_id_hash", "checkpoints")


async def test_saver_lists_a_long_history_with_limit_before_and_filter(
    seeded: Any, pool: Any
) -> None:
    saver = AsyncpgSaver(pool)
    thread = {"configurable": {"thread_id": LONG, "checkpoint_ns": ""}}
    page = [t async for t in saver.alist(thread, limit=100)]
    assert [t.checkpoint["channel_values"]["n"] for t in page] == list(range(999, 899, -1))
    older = [t async for t in saver.alist(thread, before=page[-1].config, limit=100)]
    assert [t.checkpoint["channel_values"]["n"] for t in older] == list(range(899, 799, -1))
    inputs = [t async for t in saver.alist(thread, filter={"source": "input"})]
    assert [t.metadata["step"] for t in inputs] == list(range(900, -1, -100))
    some = [
        t
        async for t in saver.alist(
            thread, filter={"source": "input"}, before=page[0].config, limit=3
        )
    ]
    assert [t.metadata["step"] for t in some] == [900, 800, 700]
    latest = await saver.aget_tuple({"configurable": {"thread_id": LONG}})
    assert latest is not None and latest.checkpoint["channel_values"]["n"] == 999
    assert latest.parent_config is not None
    assert latest.parent_config["configurable"]["checkpoint_id"] == checkpoint_id(998)
    # The other owner's thread of the same id is another thread.
    other = {"configurable": {"thread_id": LONG, "user_id": OTHER}}
    theirs = await saver.aget_tuple(other)
    assert theirs is not None and theirs.checkpoint["channel_values"]["n"] == -999
    assert [t.checkpoint["channel_values"]["n"] async for t in saver.alist(other, limit=2)] == [
        -999,
        -998,
    ]


# --- the one read path: every query that includes the checkpoint_tuple fragment --------------

# Arguments of each query that includes checkpoint_tuple: a query added without a case here
# fails test_every_checkpoint_read_has_a_plan_case.
CHECKPOINT_READS: dict[str, tuple[Any, ...]] = {
    "get_checkpoint_by_id": (NO_OWNER, LONG, "", checkpoint_id(500)),
    "get_checkpoint_latest": (NO_OWNER, LONG, ""),
    "list_checkpoints_in_namespace": (NO_OWNER, LONG, "", 100),
    "list_checkpoints_in_namespace_before": (NO_OWNER, LONG, "", checkpoint_id(500), 100),
    "list_checkpoints_by_metadata": (NO_OWNER, LONG, "", '{"source": "input"}', 5),
    "list_checkpoints_by_metadata_before": (
        NO_OWNER,
        LONG,
        "",
        '{"source": "input"}',
        checkpoint_id(500),
        3,
    ),
    "list_checkpoints_of_thread": (NO_OWNER, LONG, 100),
    "list_checkpoints_of_thread_before": (NO_OWNER, LONG, checkpoint_id(500), 100),
    "list_checkpoints_of_owner_by_metadata": (NO_OWNER, '{"run_id": "run-3-7"}', 50),
    "list_checkpoints_of_thread_filtered": (
        NO_OWNER,
        LONG,
        None,
        None,
        None,
        '{"source": "input"}',
        5,
    ),
    "list_checkpoints_of_owner_filtered": (NO_OWNER, None, None, None, '{"run_id": "run-3-7"}', 50),
}
# The catch-all across threads: its generic plan reads every checkpoint ("$n IS NULL OR ..."
# is no index condition), which is why each common call has a query of its own.
SCANS_IN_GENERIC_PLAN = {"list_checkpoints_of_owner_filtered"}


async def plan(
    conn: asyncpg.Connection[Any], query: Query, args: tuple[Any, ...], mode: str
) -> list[dict[str, Any]]:
    """The plan nodes of ``query`` under ``plan_cache_mode = mode``."""
    if mode == "force_generic_plan":
        return await explain(conn, query, *args, generic=True)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        return await explain(conn, query, *args, generic=False)


def test_every_checkpoint_read_has_a_plan_case() -> None:
    reads = {name for name, query in Q.items() if "checkpoint_tuple" in query.includes}
    assert reads == set(CHECKPOINT_READS)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_every_checkpoint_read_picks_its_checkpoints_by_an_index(
    seeded: Any, mode: str
) -> None:
    for name, args in CHECKPOINT_READS.items():
        if name in SCANS_IN_GENERIC_PLAN and mode == "force_generic_plan":
            continue
        query = Q[name]
        nodes = await plan(seeded, query, args, mode)
        assert not any(
            n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "checkpoints" for n in nodes
        ), (name, mode, nodes)
        assert {n.get("Index Name") for n in nodes} & set(query.uses), (name, mode, nodes)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_every_checkpoint_read_probes_blobs_and_writes_by_their_whole_key(
    with_writes: Any, mode: str
) -> None:
    # 1,000 blobs and writes in the thread: reading a checkpoint looks up its own (a blob by
    # its version), never a join over the thread's.
    for name, args in CHECKPOINT_READS.items():
        nodes = await plan(with_writes, Q[name], args, mode)
        for index, table in (
            ("checkpoint_blobs_pkey", "checkpoint_blobs"),
            ("checkpoint_writes_pkey", "checkpoint_writes"),
        ):
            assert_index_scan(nodes, index, table)
        probes = [n for n in nodes if n.get("Index Name") == "checkpoint_blobs_pkey"]
        assert all("version = " in n["Index Cond"] for n in probes), (name, mode, probes)
        assert not any(n["Node Type"] == "Hash Join" for n in nodes), (name, mode)
    row = await with_writes.fetchrow(
        Q["get_checkpoint_by_id"].sql, *CHECKPOINT_READS["get_checkpoint_by_id"]
    )
    assert row["blob_channels"] == ["other"]
    assert row["write_channels"] == ["n"]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_delta_channel_history_walks_parents_through_primary_keys(
    with_writes: Any, generic: bool
) -> None:
    # Each step of the walk is a lookup by key in each table, never a scan.
    seeded = with_writes
    # A channel nothing stores or writes: the walk goes up all 999 ancestors.
    args = (NO_OWNER, LONG, "", checkpoint_id(999))
    channels = ["absent"]
    nodes = await explain(
        seeded,
        Q["list_delta_channel_history"],
        *args,
        "{absent}" if generic else channels,  # the generic plan's EXECUTE takes literals
        generic=generic,
    )
    for index, table in (
        ("checkpoints_pkey", "checkpoints"),
        ("checkpoint_blobs_pkey", "checkpoint_blobs"),
        ("checkpoint_writes_pkey", "checkpoint_writes"),
    ):
        assert_index_scan(nodes, index, table)
    assert await seeded.fetch(Q["list_delta_channel_history"].sql, *args, channels) == []
    # "n" is inline in every checkpoint: the parent is the seed, and the walk stops there.
    rows = await seeded.fetch(Q["list_delta_channel_history"].sql, NO_OWNER, LONG, "", None, ["n"])
    assert [(r["depth"], r["task_id"], r["inline_value"]) for r in rows] == [
        (1, None, "998"),
        (1, "task", None),
    ]


# --- the saver's common calls, each with a query of its own (issue 7, item 6) ---------------


def pkey_scans(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in nodes if n.get("Index Name") == "checkpoints_pkey"]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_thread_history_in_every_namespace_is_one_threads_rows(
    seeded: Any, generic: bool
) -> None:
    # saver.alist({"configurable": {"thread_id": t}}): the primary key finds the thread's rows
    # (the catch-all list_checkpoints_of_owner_filtered, in a generic plan, read and sorted
    # every thread's).
    cases = [
        ("list_checkpoints_of_thread", (NO_OWNER, LONG, 100), "owner"),
        ("list_checkpoints_of_thread_before", (NO_OWNER, LONG, checkpoint_id(500), 100), "<"),
    ]
    for name, args, condition in cases:
        nodes = await explain(seeded, Q[name], *args, generic=generic)
        assert_index_scan(nodes, "checkpoints_pkey", "checkpoints")
        [scan] = pkey_scans(nodes)
        assert "thread_id =" in scan["Index Cond"] and condition in scan["Index Cond"], scan
    rows = await seeded.fetch(Q["list_checkpoints_of_thread_before"].sql, *cases[1][1])
    assert [r["checkpoint_id"] for r in rows] == [checkpoint_id(i) for i in range(499, 399, -1)]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_metadata_history_cursor_is_an_index_condition(seeded: Any, generic: bool) -> None:
    args = (NO_OWNER, LONG, "", '{"source": "input"}', checkpoint_id(500), 3)
    nodes = await explain(seeded, Q["list_checkpoints_by_metadata_before"], *args, generic=generic)
    assert not any(
        n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "checkpoints" for n in nodes
    )
    # Whether or not the planner adds the GIN index, the primary key starts at the cursor.
    scans = pkey_scans(nodes)
    assert scans and all("checkpoint_id <" in n["Index Cond"] for n in scans), nodes
    rows = await seeded.fetch(Q["list_checkpoints_by_metadata_before"].sql, *args)
    assert [r["checkpoint_id"] for r in rows] == [checkpoint_id(i) for i in (400, 300, 200)]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_other_searches_in_a_thread_read_only_its_rows(seeded: Any, generic: bool) -> None:
    # list_checkpoints_of_thread_filtered: optional conditions, but the thread is an index condition
    # in the generic plan; a custom plan may prefer the GIN index for a rare filter value.
    cases = [
        (NO_OWNER, LONG, None, None, None, '{"source": "input"}', 5),  # filter, every namespace
        (NO_OWNER, LONG, "", checkpoint_id(500), None, None, None),  # one checkpoint
    ]
    for args in cases:
        nodes = await explain(
            seeded, Q["list_checkpoints_of_thread_filtered"], *args, generic=generic
        )
        assert not any(
            n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "checkpoints" for n in nodes
        )
        scans = pkey_scans(nodes)
        assert scans or not generic, nodes
        assert {n.get("Index Name") for n in nodes} & set(
            Q["list_checkpoints_of_thread_filtered"].uses
        )
        for scan in scans:
            assert "thread_id =" in scan["Index Cond"] and "owner =" in scan["Index Cond"], scan
    rows = await seeded.fetch(Q["list_checkpoints_of_thread_filtered"].sql, *cases[0])
    assert [r["checkpoint_id"] for r in rows] == [checkpoint_id(i) for i in range(900, 400, -100)]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_metadata_search_across_threads_uses_the_gin_index(
    seeded: Any, generic: bool
) -> None:
    # saver.alist(None, filter={"run_id": ...}): the primary key cannot serve a search
    # across threads; the GIN index on metadata does (it is there for this query).
    args = (NO_OWNER, '{"run_id": "run-3-7"}', 50)
    nodes = await explain(
        seeded, Q["list_checkpoints_of_owner_by_metadata"], *args, generic=generic
    )
    assert_index_scan(nodes, "checkpoints_metadata_gin", "checkpoints")
    rows = await seeded.fetch(Q["list_checkpoints_of_owner_by_metadata"].sql, *args)
    assert [(r["thread_id"], r["checkpoint_id"]) for r in rows] == [
        ("thread-3", checkpoint_id(i)) for i in range(79, 69, -1)
    ]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_delete_for_runs_of_a_run_id_over_the_btree_limit_uses_the_hash_index(
    seeded: Any, generic: bool
) -> None:
    # The run id index is a hash index: it holds a run id of any length (a B-tree entry
    # holds about 2,700 bytes), and still serves the delete.
    long_run = secrets.token_urlsafe(3000)  # 4,000 random characters: no compression helps
    undo = seeded.transaction()  # the database is the module's: leave it as it was
    await undo.start()
    try:
        await seeded.execute(
            """
            INSERT INTO checkpoints (thread_id, owner, checkpoint_ns, checkpoint_id, checkpoint,
                                     metadata)
            SELECT 'thread-1', $1, '', '2f0' || i, '{}', jsonb_build_object('run_id', $2::text)
              FROM generate_series(1, 3) AS i
            """,
            NO_OWNER,
            long_run,
        )
        run_ids = "{" + long_run + "}" if generic else [long_run]  # EXECUTE takes literals
        nodes = await explain(
            seeded, Q["delete_checkpoints_for_runs"], NO_OWNER, run_ids, generic=generic
        )
        assert_index_scan(nodes, "checkpoints_run_id_hash", "checkpoints")
        deleted = await seeded.fetchval(Q["delete_checkpoints_for_runs"].sql, NO_OWNER, [long_run])
        assert deleted == 3
        assert await seeded.fetchval("SELECT count(*) FROM checkpoints") == 2 * THREADS * PER_THREAD
    finally:
        await undo.rollback()
