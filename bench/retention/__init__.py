"""The retention suite: how fast retention deletes checkpoints (rows/s) while an agent workload
runs, and what it costs that workload (issue 15's target: its p99 at most 2x the p99 it has
alone).

- ``dataset``: ``--retention-checkpoints`` checkpoints (1,000,000; 100,000 with --quick), with
  their blobs and pending writes, copied server-side from a thread the real saver wrote, in
  threads of 100 checkpoints, most of them old;
- ``workload``: ``--retention-clients`` agents invoking a LangGraph graph on ``AsyncpgSaver``
  and reading the latest checkpoint back, on fresh threads, on threads keep-N prunes and on old
  threads the thread TTL deletes; every latency timed;
- ``policies``: the retention runs, a thread TTL then keep-N, each on a pool of its own.

The workload runs alone for ``--retention-baseline`` seconds (its p50/p99 before), then
through each retention run (its p50/p99 during; the ratio of the p99s against before), then
alone again (after: the same database, smaller). A run's throughput is the rows it deleted
(checkpoints + blobs + writes, from the server's own counters, ``pg_stat_user_tables``) over
its wall time. At the end, every thread the workload wrote must hold what it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench._report import log, table
from bench.checkpoints.graph import build_graph
from bench.retention import dataset, policies
from bench.retention.workload import Workload
from dal.database import pool_options
from dal.langgraph import AsyncpgSaver
from dal.settings import Settings

__all__ = ["DEFAULTS", "as_json", "render", "run"]

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "retention_checkpoints": (1_000_000, 100_000, "checkpoints seeded (with blobs and writes)"),
    "retention_invokes": (20, 20, "invocations (5 checkpoints each) of each seeded thread"),
    "retention_old_percent": (80, 80, "percent of seeded threads older than the TTL"),
    "retention_ttl_days": (30, 30, "thread TTL: days since a thread's newest checkpoint"),
    "retention_keep": (10, 10, "keep-N: checkpoints kept per thread namespace"),
    "retention_batch": (1000, 1000, "rows per retention batch (each its own transaction)"),
    "retention_clients": (6, 6, "concurrent agent clients (2 of each kind of thread)"),
    "retention_baseline": (20, 8, "seconds the workload runs alone, before and after"),
}
TARGET_RATIO = 2.0
OPERATIONS = ("invoke", "aget_tuple")
TABLES = {"checkpoints": "checkpoints", "blobs": "checkpoint_blobs", "writes": "checkpoint_writes"}

_DELETED = """
SELECT relname, n_tup_del FROM pg_stat_user_tables
 WHERE relname IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes')
"""


@dataclass
class Phase:
    key: str
    title: str
    seconds: float = 0.0
    deleted: dict[str, int] = field(default_factory=dict)  # checkpoints, blobs, writes
    report: dict[str, Any] | None = None  # a retention run's: run_retention's own counts
    load: float = 0.0  # the machine's 1-minute load average at the phase's end
    # operation: the latencies (s) of the workload during the phase
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())

    def p(self, operation: str, q: float) -> float | None:
        samples = sorted(self.latencies.get(operation, []))
        if not samples:
            return None
        return samples[min(len(samples) - 1, int(q * len(samples)))] * 1000


@dataclass
class Outcome:
    data: dataset.Dataset
    phases: list[Phase]
    lost: list[str]
    torn: list[str]
    rows_after: dict[str, int]
    threads_written: int

    @property
    def before(self) -> Phase:
        return self.phases[0]

    def ratio(self, phase: Phase, operation: str) -> float | None:
        during, before = phase.p(operation, 0.99), self.before.p(operation, 0.99)
        return None if during is None or not before else during / before

    @property
    def passed(self) -> bool:
        ratios = [self.ratio(p, o) for p in self.runs for o in OPERATIONS]
        return not self.lost and all(r is not None and r <= TARGET_RATIO for r in ratios)

    @property
    def runs(self) -> list[Phase]:
        return [p for p in self.phases if p.report is not None]


async def _deleted(pool: Any) -> dict[str, int]:
    """The server's count of rows deleted from the checkpoint tables, once it stops moving (a
    backend reports its counts when it ends: the retention pool is closed before this)."""
    previous: dict[str, int] | None = None
    for _ in range(20):
        rows = await pool.fetch(_DELETED)
        now = {
            key: next(r["n_tup_del"] for r in rows if r["relname"] == name)
            for key, name in TABLES.items()
        }
        if now == previous:
            return now
        previous = now
        await asyncio.sleep(0.5)
    return previous or {}


async def _alone(workload: Workload, phase: Phase, seconds: float) -> Phase:
    workload.phase = phase.key
    await asyncio.sleep(seconds)
    workload.phase = None
    phase.load = os.getloadavg()[0]
    return phase


async def _retention(
    url: str, workload: Workload, pool: Any, policy: policies.Policy, batch: int
) -> Phase:
    phase = Phase(policy.key, policy.title)
    before = await _deleted(pool)
    settings = Settings(database_url=url, db_min_connections=2, db_max_connections=2)
    retention_pool: Any = await asyncpg.create_pool(url, **pool_options(settings))
    try:
        workload.phase = phase.key
        start = time.perf_counter()
        phase.report = await policies.run_policy(
            retention_pool, policy, now=datetime.now(UTC), batch=batch
        )
        phase.seconds = time.perf_counter() - start
        workload.phase = None
        phase.load = os.getloadavg()[0]
    finally:
        await retention_pool.close()
    after = await _deleted(pool)
    phase.deleted = {key: after[key] - before[key] for key in TABLES}
    log(
        f"retention: {policy.title}: {phase.rows:,} rows deleted in {phase.seconds:.1f} s "
        f"({phase.rows / max(phase.seconds, 1e-9):,.0f} rows/s), {phase.report['batches']} batches"
    )
    return phase


async def run(url: str, args: argparse.Namespace) -> Outcome:
    settings = Settings(
        database_url=url, db_min_connections=args.pool_size, db_max_connections=args.pool_size
    )
    pool: Any = await asyncpg.create_pool(url, **pool_options(settings))
    try:
        saver = AsyncpgSaver(pool)
        graph = build_graph(saver)
        async with pool.acquire() as conn:
            data = await dataset.seed(
                conn,
                graph,
                checkpoints=args.retention_checkpoints,
                invokes=args.retention_invokes,
                old_percent=args.retention_old_percent,
                ttl_days=args.retention_ttl_days,
            )
        workload = Workload(graph, saver, data, args.retention_clients)
        clients = asyncio.create_task(workload.run())
        phases: list[Phase] = []
        try:
            await asyncio.sleep(2)  # warm-up, not measured
            log(f"retention: the workload alone for {args.retention_baseline} s")
            before = Phase("before", "workload alone, before")
            phases.append(await _alone(workload, before, args.retention_baseline))
            for policy in (
                policies.Policy(
                    "thread_ttl",
                    f"thread TTL {args.retention_ttl_days} days",
                    ttl_days=args.retention_ttl_days,
                ),
                policies.Policy(
                    "keep_n", f"keep newest {args.retention_keep}", keep=args.retention_keep
                ),
            ):
                log(f"retention: {policy.title}, the workload running")
                phases.append(await _retention(url, workload, pool, policy, args.retention_batch))
                await asyncio.sleep(1)
            after = Phase("after", "workload alone, after")
            phases.append(await _alone(workload, after, args.retention_baseline))
        finally:
            workload.stop()
            await asyncio.wait_for(clients, timeout=120)
        for phase in phases:
            phase.latencies = {o: workload.latencies[(phase.key, o)] for o in OPERATIONS}
        lost = await workload.check(args.retention_keep)
        for line in lost[:20]:
            log(f"retention: LOST {line}")
        rows_after = dict(await pool.fetchrow(dataset.COUNTS))
        for line in workload.torn[:20]:
            log(f"retention: TORN {line}")
        return Outcome(data, phases, lost, workload.torn, rows_after, len(workload.written))
    finally:
        await pool.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render(outcome: Outcome) -> str:
    data = outcome.data
    head = (
        f"{data.rows['checkpoints']:,} checkpoints, {data.rows['blobs']:,} blobs, "
        f"{data.rows['writes']:,} writes in {data.threads:,} threads of {data.per_thread} "
        f"(seeded in {data.seconds:.0f} s); {outcome.threads_written} threads written by "
        f"the workload"
    )
    deletes = table(
        ["retention run", "s", "checkpoints", "blobs", "writes", "rows/s", "checkpoints/s"],
        [
            [
                p.title,
                f"{p.seconds:.1f}",
                f"{p.deleted['checkpoints']:,}",
                f"{p.deleted['blobs']:,}",
                f"{p.deleted['writes']:,}",
                f"{p.rows / max(p.seconds, 1e-9):,.0f}",
                f"{p.deleted['checkpoints'] / max(p.seconds, 1e-9):,.0f}",
            ]
            for p in outcome.runs
        ],
    )
    rows = []
    for p in outcome.phases:
        row = [p.title, f"{p.load:.1f}", f"{len(p.latencies['invoke']):,}"]
        for o in OPERATIONS:
            ratio = outcome.ratio(p, o) if p.report is not None else None
            row += [
                _ms(p.p(o, 0.5)),
                _ms(p.p(o, 0.99)),
                ""
                if ratio is None
                else f"{ratio:.2f}" + (" (missed)" if ratio > TARGET_RATIO else ""),
            ]
        rows.append(row)
    latencies = table(
        [
            "workload",
            "load",
            "invokes",
            "invoke p50",
            "p99",
            "p99 / before",
            "aget_tuple p50",
            "p99",
            "p99 / before",
        ],
        rows,
    )
    verdict = (
        "nothing the workload wrote was lost"
        if not outcome.lost
        else f"LOST: {len(outcome.lost)} threads lost what the workload wrote"
    )
    torn = (
        f"; {len(outcome.torn)} seeded threads were found half deleted by their first invocation"
        if outcome.torn
        else "; no seeded thread was found half deleted"
    )
    return "\n\n".join(
        [head, deletes, latencies, f"target: p99 / before <= {TARGET_RATIO:.0f}; {verdict}{torn}"]
    )


def as_json(outcome: Outcome) -> dict[str, Any]:
    data = outcome.data
    return {
        "dataset": {
            "threads": data.threads,
            "checkpoints_per_thread": data.per_thread,
            "old_threads": len(data.old_threads),
            "rows": data.rows,
            "seeded_s": round(data.seconds, 1),
        },
        "phases": [
            {
                "phase": p.key,
                "title": p.title,
                "seconds": round(p.seconds, 2),
                "load_average": round(p.load, 2),
                "deleted": p.deleted,
                "report": p.report,
                "rows_per_s": round(p.rows / p.seconds) if p.seconds else None,
                **{
                    o: {
                        "operations": len(p.latencies[o]),
                        "p50_ms": _round(p.p(o, 0.5)),
                        "p99_ms": _round(p.p(o, 0.99)),
                        "mean_ms": _round(statistics.fmean(p.latencies[o]) * 1000)
                        if p.latencies[o]
                        else None,
                        "p99_ratio": _round(outcome.ratio(p, o)) if p.report is not None else None,
                    }
                    for o in OPERATIONS
                },
            }
            for p in outcome.phases
        ],
        "target_p99_ratio": TARGET_RATIO,
        "lost": outcome.lost,
        "torn": outcome.torn,
        "rows_after": outcome.rows_after,
        "threads_written": outcome.threads_written,
        "result": "PASS" if outcome.passed else "BELOW",
    }
