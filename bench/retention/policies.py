"""The retention runs the suite measures: a thread TTL, then keep-N, each one run to its end on
a pool of its own while the workload runs.

``run_policy`` calls Mnemo's ``dal.usecases.retention.run_retention`` when it exists. Until it
does, a stand-in does the same deletions in bounded batches with ad-hoc SQL (a thread TTL:
old threads, their rows by the threads' delete trigger; keep-N: the checkpoints beyond the
newest N of each thread namespace, their writes, the blobs no kept checkpoint names), so that
the harness runs; the results say which one ran.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

STANDIN = "bench stand-in (ad-hoc batched SQL)"

_TTL_BATCH = """
WITH doomed AS (
    SELECT thread_id, owner FROM threads
     WHERE updated_at < $1
     ORDER BY updated_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
DELETE FROM threads AS t USING doomed AS d
 WHERE t.thread_id = d.thread_id AND t.owner = d.owner
"""

_KEEP_BATCH = """
WITH batch AS (
    SELECT thread_id, owner FROM threads
     WHERE (thread_id, owner) > ($1, $2::uuid)
     ORDER BY thread_id, owner
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT c.thread_id, c.owner, c.checkpoint_ns, c.checkpoint_id, c.checkpoint,
           row_number() OVER (PARTITION BY c.thread_id, c.owner, c.checkpoint_ns
                              ORDER BY c.checkpoint_id DESC) AS r
      FROM checkpoints AS c JOIN batch AS b USING (thread_id, owner)
), gone AS (
    DELETE FROM checkpoints AS c USING ranked AS r
     WHERE r.r > $4 AND c.thread_id = r.thread_id AND c.owner = r.owner
       AND c.checkpoint_ns = r.checkpoint_ns AND c.checkpoint_id = r.checkpoint_id
    RETURNING c.thread_id, c.owner, c.checkpoint_ns, c.checkpoint_id
), gone_writes AS (
    DELETE FROM checkpoint_writes AS w USING gone AS g
     WHERE w.thread_id = g.thread_id AND w.owner = g.owner
       AND w.checkpoint_ns = g.checkpoint_ns AND w.checkpoint_id = g.checkpoint_id
    RETURNING 1
), needed AS (
    SELECT DISTINCT r.thread_id, r.owner, r.checkpoint_ns, v.key AS channel, v.value AS version
      FROM ranked AS r, jsonb_each_text(r.checkpoint -> 'channel_versions') AS v
     WHERE r.r <= $4
), gone_blobs AS (
    DELETE FROM checkpoint_blobs AS x USING batch AS b
     WHERE x.thread_id = b.thread_id AND x.owner = b.owner
       AND NOT EXISTS (SELECT 1 FROM needed AS n
                        WHERE n.thread_id = x.thread_id AND n.owner = x.owner
                          AND n.checkpoint_ns = x.checkpoint_ns AND n.channel = x.channel
                          AND n.version = x.version)
    RETURNING 1
)
SELECT thread_id, owner FROM batch ORDER BY thread_id DESC, owner DESC LIMIT 1
"""


@dataclass(frozen=True)
class Policy:
    key: str  # "thread_ttl" or "keep_n"
    title: str
    ttl_days: int | None = None
    keep: int | None = None


def implementation() -> Any:
    """Mnemo's ``run_retention``, or None while it does not exist."""
    try:
        module = importlib.import_module("dal.usecases.retention")
    except ImportError:
        return None
    return getattr(module, "run_retention", None)


async def run_policy(
    pool: Any, policy: Policy, *, now: datetime, batch: int
) -> tuple[str, dict[str, Any] | None]:
    """Run ``policy`` to its end; returns which implementation ran, and its report."""
    run_retention = implementation()
    if run_retention is not None:
        from dal.records.retention import RetentionPolicy

        chosen = RetentionPolicy(thread_days=policy.ttl_days, keep_checkpoints=policy.keep)
        report = await run_retention(pool, chosen, now=now, batch=batch)
        return "Mnemo run_retention", report.model_dump(mode="json")
    if policy.ttl_days is not None:
        cutoff = now - timedelta(days=policy.ttl_days)
        # A seeded thread has 100 checkpoints: a batch of threads of about ``batch`` of them.
        while (await pool.execute(_TTL_BATCH, cutoff, max(1, batch // 100))) != "DELETE 0":
            pass
    if policy.keep is not None:
        after: tuple[str, Any] = ("", "00000000-0000-0000-0000-000000000000")
        while True:
            last = await pool.fetchrow(_KEEP_BATCH, *after, max(1, batch // 100), policy.keep)
            if last is None:
                break
            after = (last["thread_id"], last["owner"])
    return STANDIN, None
