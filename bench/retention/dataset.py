"""The data the retention runs delete: ``--retention-checkpoints`` checkpoints, with their blobs
and pending writes, in threads as the saver leaves them.

One template thread is written by the real saver (``AsyncpgSaver``) running the suite's graph
``invokes`` times, so its rows have the exact shapes the saver writes: checkpoints with their
channel versions, blobs keyed by version (a value that did not change is stored once), the
pending writes of every task. The template is then copied server-side
(``INSERT ... SELECT ... generate_series``) into ``threads`` threads of the nil owner, in chunks,
and deleted; ``VACUUM ANALYZE`` at the end, as a live database's old rows would be.

Thread ``i`` is old (its newest checkpoint ``ttl_days + 1`` to ``ttl_days + 200`` days ago)
when ``i % 100 < old_percent``, else recent (its newest checkpoint within the last 12 hours);
within a thread the checkpoints are a minute apart, oldest first, as the template's order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench._report import log
from bench.checkpoints.graph import Graph, invoke, thread

TEMPLATE = "retention-template"
CHUNK = 200  # threads per copying statement

_COPY_THREADS = """
INSERT INTO threads (thread_id, owner, user_id, metadata, created_at, updated_at)
SELECT 'ret-' || i, t.owner, NULL, t.metadata,
       p.newest - make_interval(mins => $5::int), p.newest
  FROM threads AS t,
       generate_series($1::int, $2::int) AS i,
       LATERAL (SELECT CASE WHEN i % 100 < $3
                            THEN now() - make_interval(days => $4 + 1 + i % 200)
                            ELSE now() - make_interval(mins => i % 720) END AS newest) AS p
 WHERE t.thread_id = $6
"""

_COPY_CHECKPOINTS = """
INSERT INTO checkpoints (thread_id, owner, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                         checkpoint, metadata, created_at)
SELECT t.thread_id, c.owner, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id,
       c.checkpoint, c.metadata, t.updated_at - make_interval(mins => c.age::int)
  FROM threads AS t,
       (SELECT *, row_number() OVER (ORDER BY checkpoint_id DESC) - 1 AS age
          FROM checkpoints WHERE thread_id = $3) AS c
 WHERE t.thread_id = ANY (SELECT 'ret-' || i FROM generate_series($1::int, $2::int) AS i)
   AND t.owner = c.owner
"""

_COPY_BLOBS = """
INSERT INTO checkpoint_blobs (thread_id, owner, checkpoint_ns, channel, version, type, blob)
SELECT 'ret-' || i, b.owner, b.checkpoint_ns, b.channel, b.version, b.type, b.blob
  FROM checkpoint_blobs AS b, generate_series($1::int, $2::int) AS i
 WHERE b.thread_id = $3
"""

_COPY_WRITES = """
INSERT INTO checkpoint_writes (thread_id, owner, checkpoint_ns, checkpoint_id, task_id, idx,
                               channel, type, blob, task_path)
SELECT 'ret-' || i, w.owner, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx, w.channel,
       w.type, w.blob, w.task_path
  FROM checkpoint_writes AS w, generate_series($1::int, $2::int) AS i
 WHERE w.thread_id = $3
"""

COUNTS = """
SELECT (SELECT count(*) FROM checkpoints) AS checkpoints,
       (SELECT count(*) FROM checkpoint_blobs) AS blobs,
       (SELECT count(*) FROM checkpoint_writes) AS writes,
       (SELECT count(*) FROM threads) AS threads
"""


@dataclass(frozen=True)
class Dataset:
    threads: int
    old_threads: list[str]  # newest checkpoint older than the TTL
    recent_threads: list[str]
    per_thread: int  # checkpoints per thread
    messages: int  # the length of a seeded thread's "messages" channel
    turns: int  # its "turns" channel
    rows: dict[str, int]  # checkpoints, blobs, writes, threads after seeding
    seconds: float  # to generate them


async def seed(
    conn: Any,
    graph: Graph,
    *,
    checkpoints: int,
    invokes: int,
    old_percent: int,
    ttl_days: int,
) -> Dataset:
    """Write the template with ``graph`` (on the saver), copy it, return what was made."""
    start = time.perf_counter()
    for _ in range(invokes):
        await invoke(graph, TEMPLATE)
    state = await graph.aget_state(thread(TEMPLATE))
    per_thread = await conn.fetchval(
        "SELECT count(*) FROM checkpoints WHERE thread_id = $1", TEMPLATE
    )
    threads = max(1, checkpoints // per_thread)
    log(
        f"retention: seeding {threads:,} threads of {per_thread} checkpoints "
        f"({threads * per_thread:,} checkpoints), {old_percent}% older than {ttl_days} days"
    )
    for first in range(1, threads + 1, CHUNK):
        last = min(threads, first + CHUNK - 1)
        async with conn.transaction():
            await conn.execute(
                _COPY_THREADS, first, last, old_percent, ttl_days, per_thread, TEMPLATE
            )
            await conn.execute(_COPY_CHECKPOINTS, first, last, TEMPLATE)
            await conn.execute(_COPY_BLOBS, first, last, TEMPLATE)
            await conn.execute(_COPY_WRITES, first, last, TEMPLATE)
        if last == threads or (last // CHUNK) % 10 == 0:
            log(f"retention: {last:,}/{threads:,} threads ({time.perf_counter() - start:.0f} s)")
    await conn.execute("DELETE FROM threads WHERE thread_id = $1", TEMPLATE)
    await conn.execute("DELETE FROM checkpoint_writes WHERE thread_id = $1", TEMPLATE)
    await conn.execute("VACUUM ANALYZE")
    rows = dict(await conn.fetchrow(COUNTS))
    seconds = time.perf_counter() - start
    log(f"retention: seeded in {seconds:.0f} s: {rows}")
    names = [f"ret-{i}" for i in range(1, threads + 1)]
    return Dataset(
        threads=threads,
        old_threads=[n for i, n in enumerate(names, 1) if i % 100 < old_percent],
        recent_threads=[n for i, n in enumerate(names, 1) if i % 100 >= old_percent],
        per_thread=per_thread,
        messages=len(state.values["messages"]),
        turns=state.values["turns"],
        rows=rows,
        seconds=seconds,
    )
