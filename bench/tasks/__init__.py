"""The tasks suite: claim-and-complete throughput of Mnemo's queue against pgqueuer's.

The work is the same on both sides: ``--tasks-count`` tasks are enqueued (untimed), then
``workers`` concurrent asyncio workers drain the queue, each task claimed and completed
exactly once by an empty handler; the time is from the workers' start to the last one's
end. Each contender has a database of its own on the same server (Mnemo's migrated; pgqueuer
installs its schema in an empty one) and a pool of ``workers`` connections, every worker
holding one connection for the whole drain (the arrangement pgqueuer's own benchmark uses:
one connection per consumer).

- ``mnemo``: the gateways, as README "Tasks" shows them: ``claim_tasks(limit=batch)``, the
  handler of each claimed task, then ``complete_tasks`` of the batch in one statement (one
  commit), until a claim comes back empty. For reference, ``single``: the same with
  ``complete_task`` for each task (a commit each).
- ``pgqueuer``: a ``QueueManager`` per worker on ``Queries`` of its connection, an
  empty entrypoint, ``run(batch_size=batch, mode=drain)``: it dequeues ``batch`` jobs in a
  statement, runs each handler as a task, and logs the finished jobs in batched statements.

Both take ``--tasks-batch`` tasks per claim. pgqueuer's start-up in ``run`` (its schema check,
its listener) counts in its time, as the listener of Mnemo's worker iterator (below) does in
that one's. Exactly-once is checked on both sides after
each drain: every task's handler ran once (counted per task by the handlers), and the
database agrees (Mnemo: all succeeded on their first attempt; pgqueuer: its queue is empty).
Before each drain both tables are vacuumed and analyzed alike. Within each round the two take
turns, the order alternating between rounds and between worker counts; the table shows
medians of tasks/s over the rounds and the spread of the per-round ratios.

When this tree has Mnemo's worker iterator (``dal.usecases.tasks.mnemo_worker``), a third
contender drains the same tasks with it: ``async for job in mnemo_worker(pool, batch=batch)``
per worker, ``async with job`` completing each (its listener connection, heartbeats and all);
its iterators never end by themselves, so its drain ends when the last task is done. And a
fourth: ``Worker(pool, handler, concurrency=batch)`` objects, one per worker, the way README
"Workers" gets throughput (handlers run concurrently, completions made together commit
together); stopped once every handler ran, their drain ends when every ``run`` returned.

Target (issue 12): Mnemo >= 1x pgqueuer's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import logging
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import asyncpg

from bench._report import log, table
from dal.database import pool_options
from dal.gateways import tasks
from dal.ids import new_id
from dal.settings import Settings

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "tasks_count": (10000, 2000, "tasks drained per contender, round and worker count"),
    "tasks_batch": (10, 10, "tasks per claim (pgqueuer's batch_size)"),
    "tasks_workers": (8, 8, "concurrent workers of the parallel drain (the other has 1)"),
}
PACKAGES = ("pgqueuer",)
TARGET = 1.0

Contender = Literal["mnemo", "pgqueuer", "single", "worker", "pool"]
CONTENDERS: tuple[Contender, ...] = ("mnemo", "pgqueuer")
# Mnemo's worker iterator, when this tree has it: a third contender (see the module's doc).
WORKER: tuple[Contender, ...] = ("worker", "pool")
# The gateways completing each task by itself (complete_task), for reference.
SINGLE: tuple[Contender, ...] = ("single",)
WORKER_TIMEOUT = 600.0
KIND = "bench.empty"


class ExactlyOnceBroken(RuntimeError):
    """A drain ran a task twice or never: the numbers would mean nothing."""


# The other Mnemo contenders, by their names in the JSON.
OTHERS: dict[Contender, str] = {
    "single": "mnemo_one_by_one",
    "worker": "mnemo_worker",
    "pool": "mnemo_Worker",
}


@dataclass
class Result:
    workers: int
    samples: dict[Contender, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )

    def worker_ratio(self, contender: Contender = "worker") -> float | None:
        if not self.samples.get(contender):
            return None
        return self.median(contender) / self.median("pgqueuer")

    def median(self, contender: Contender) -> float:
        return statistics.median(self.samples[contender])

    @property
    def ratio(self) -> float:
        return self.median("mnemo") / self.median("pgqueuer")

    @property
    def round_ratios(self) -> list[float]:
        pairs = zip(self.samples["mnemo"], self.samples["pgqueuer"], strict=True)
        return [m / p for m, p in pairs]

    @property
    def passed(self) -> bool:
        return self.ratio >= TARGET

    def as_json(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "mnemo_tasks_s": round(self.median("mnemo"), 1),
            "pgqueuer_tasks_s": round(self.median("pgqueuer"), 1),
            "ratio": round(self.ratio, 4),
            "target": TARGET,
            "result": "PASS" if self.passed else "BELOW",
            "rounds": {
                "mnemo_tasks_s": [round(x, 1) for x in self.samples["mnemo"]],
                "pgqueuer_tasks_s": [round(x, 1) for x in self.samples["pgqueuer"]],
                "ratio": [round(x, 4) for x in self.round_ratios],
                **{
                    f"{OTHERS[c]}_tasks_s": [round(x, 1) for x in self.samples[c]]
                    for c in OTHERS
                    if self.samples.get(c)
                },
            },
            **{
                key: value
                for c in OTHERS
                if (ratio := self.worker_ratio(c)) is not None
                for key, value in (
                    (f"{OTHERS[c]}_tasks_s", round(self.median(c), 1)),
                    (f"{OTHERS[c]}_ratio", round(ratio, 4)),
                )
            },
        }


def check_once(seen: Counter[Any], expected: int, who: str) -> None:
    twice = [key for key, n in seen.items() if n != 1]
    if twice or len(seen) != expected:
        raise ExactlyOnceBroken(
            f"{who}: {len(seen)} of {expected} tasks handled, {len(twice)} more than once"
        )


# --- Mnemo ------------------------------------------------------------------------------


class MnemoSide:
    def __init__(self, pool: Any, user_id: UUID) -> None:
        self.pool = pool
        self.user_id = user_id
        self.ids: list[UUID] = []

    async def enqueue(self, count: int) -> None:
        self.ids = [new_id() for _ in range(count)]
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO tasks (id, user_id, kind, title)"
                " SELECT id, $2, $3, 'bench' FROM unnest($1::uuid[]) AS id",
                self.ids,
                self.user_id,
                KIND,
            )
            await conn.execute("VACUUM ANALYZE tasks")

    async def drain(self, workers: int, batch: int, *, one_by_one: bool = False) -> float:
        """Claim ``batch`` at a time, run the handler of each, then complete the batch in one
        statement (``complete_tasks``), or each task by itself (``complete_task``)."""
        seen: Counter[UUID] = Counter()

        async def handler(task: tasks.Task) -> None:
            seen[task.id] += 1

        async def worker(name: str, ready: asyncio.Event) -> None:
            async with self.pool.acquire() as conn:
                await ready.wait()
                while claimed := await tasks.claim_tasks(
                    conn, kinds=[KIND], worker=name, limit=batch
                ):
                    if one_by_one:
                        for task in claimed:
                            await handler(task)
                            await tasks.complete_task(conn, task_id=task.id, worker=name)
                        continue
                    results: dict[UUID, Any] = {}
                    for task in claimed:
                        await handler(task)
                        results[task.id] = None
                    completed = await tasks.complete_tasks(conn, worker=name, results=results)
                    if len(completed) != len(claimed):
                        raise ExactlyOnceBroken(f"{name} lost {len(claimed) - len(completed)}")

        seconds = await _timed_drain(worker, workers)
        await self.check(seen, "mnemo, one by one" if one_by_one else "mnemo")
        return seconds

    async def drain_with_worker(self, workers: int, batch: int) -> float:
        """The same drain by ``mnemo_worker`` iterators on the pool (``async with job``
        completes each task); they never end by themselves, so the drain ends when every task
        is done, and the iterators are closed."""
        from dal.usecases.tasks import mnemo_worker

        seen: Counter[UUID] = Counter()
        total, done, finished = len(self.ids), asyncio.Event(), [0]

        async def worker(name: str, ready: asyncio.Event) -> None:
            await ready.wait()
            jobs = mnemo_worker(self.pool, kinds=[KIND], worker_id=name, batch=batch)
            async with contextlib.aclosing(jobs):
                async for job in jobs:
                    async with job:
                        seen[job.task.id] += 1
                    finished[0] += 1
                    if finished[0] == total:
                        done.set()

        ready = asyncio.Event()
        running = [asyncio.create_task(worker(f"w{n}", ready)) for n in range(workers)]
        gc.collect()
        start = time.perf_counter()
        ready.set()
        try:
            await asyncio.wait_for(done.wait(), WORKER_TIMEOUT)
            seconds = time.perf_counter() - start
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        await self.check(seen, "mnemo_worker")
        return seconds

    async def drain_with_workers(self, workers: int, batch: int) -> float:
        """The same drain by ``Worker(concurrency=batch)`` objects on the pool, the empty
        handler's return completing each task (completions made together commit together);
        stopped once every handler has run, the drain ends when their ``run`` returns."""
        from dal.usecases.tasks import Job, Worker

        seen: Counter[UUID] = Counter()
        total, done, finished = len(self.ids), asyncio.Event(), [0]

        async def handler(job: Job) -> None:
            seen[job.task.id] += 1
            finished[0] += 1
            if finished[0] == total:
                done.set()

        runners = [
            Worker(self.pool, handler, kinds=[KIND], worker_id=f"w{n}", concurrency=batch)
            for n in range(workers)
        ]
        gc.collect()
        start = time.perf_counter()
        running = [asyncio.create_task(runner.run()) for runner in runners]
        try:
            await asyncio.wait_for(done.wait(), WORKER_TIMEOUT)
            for runner in runners:
                runner.stop()
            await asyncio.gather(*running)
            seconds = time.perf_counter() - start
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        await self.check(seen, "Worker")
        return seconds

    async def check(self, seen: Counter[UUID], who: str) -> None:
        check_once(seen, len(self.ids), who)
        async with self.pool.acquire() as conn:
            done = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[])"
                " AND status = 'succeeded' AND attempts = 1",
                self.ids,
            )
        if done != len(self.ids):
            raise ExactlyOnceBroken(f"{who}: {done} of {len(self.ids)} tasks succeeded once")


# --- pgqueuer ---------------------------------------------------------------------------


class PgqueuerSide:
    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.count = 0

    async def install(self) -> None:
        from pgqueuer import Queries

        async with self.pool.acquire() as conn:
            await Queries.from_asyncpg_connection(conn).install()

    async def enqueue(self, count: int) -> None:
        from pgqueuer import Queries

        self.count = count
        async with self.pool.acquire() as conn:
            await Queries.from_asyncpg_connection(conn).enqueue(
                [KIND] * count, [str(i).encode() for i in range(count)], [0] * count
            )
            await conn.execute("VACUUM ANALYZE pgqueuer")

    async def drain(self, workers: int, batch: int) -> float:
        from pgqueuer import Job, Queries, QueueManager
        from pgqueuer.types import QueueExecutionMode

        seen: Counter[bytes | None] = Counter()

        async def worker(name: str, ready: asyncio.Event) -> None:
            async with self.pool.acquire() as conn:
                manager = QueueManager(Queries.from_asyncpg_connection(conn))

                @manager.entrypoint(KIND)
                async def handler(job: Job) -> None:
                    seen[job.payload] += 1

                await ready.wait()
                await manager.run(batch_size=batch, mode=QueueExecutionMode.drain)

        seconds = await _timed_drain(worker, workers)
        check_once(seen, self.count, "pgqueuer")
        async with self.pool.acquire() as conn:
            left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
        if left:
            raise ExactlyOnceBroken(f"pgqueuer: {left} jobs left in the queue")
        return seconds


async def _timed_drain(
    worker: Callable[[str, asyncio.Event], Awaitable[None]], workers: int
) -> float:
    """Start ``workers`` workers, each on its connection, release them together, time them."""
    ready = asyncio.Event()
    running = [asyncio.create_task(worker(f"w{n}", ready)) for n in range(workers)]
    await asyncio.sleep(0.05)  # every worker has its connection and waits on ``ready``
    gc.collect()
    start = time.perf_counter()
    ready.set()
    try:
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
    return time.perf_counter() - start


def has_worker() -> bool:
    """Whether this tree has Mnemo's worker iterator (``dal.usecases.tasks.mnemo_worker``)."""
    try:
        if importlib.util.find_spec("dal.usecases.tasks") is None:
            return False
    except ModuleNotFoundError:
        return False
    from dal.usecases import tasks as usecases

    return hasattr(usecases, "mnemo_worker")


async def drain(
    sides: dict[Contender, Any], contender: Contender, workers: int, batch: int
) -> float:
    mnemo: MnemoSide = sides["mnemo"]
    if contender == "worker":
        return await mnemo.drain_with_worker(workers, batch)
    if contender == "pool":
        return await mnemo.drain_with_workers(workers, batch)
    if contender == "single":
        return await mnemo.drain(workers, batch, one_by_one=True)
    seconds: float = await sides[contender].drain(workers, batch)
    return seconds


async def run(mnemo_url: str, pgqueuer_url: str, args: argparse.Namespace) -> list[Result]:
    """Drain the queues with 1 and ``--tasks-workers`` workers, ``--rounds`` rounds each."""
    # pgqueuer logs every job it dispatches at DEBUG and a few things at INFO.
    logging.getLogger("pgqueuer").setLevel(logging.WARNING)
    # A pgqueuer worker's connection goes back to its pool still listening; the pool's reset
    # (asyncpg's default: UNLISTEN * and the listeners dropped) cleans it, asyncpg warns.
    warnings.filterwarnings("ignore", message=".*active notification listener")
    counts = sorted({1, args.tasks_workers})
    size = max(counts)
    settings = Settings(database_url=mnemo_url, db_min_connections=size, db_max_connections=size)
    mnemo_pool: Any = await asyncpg.create_pool(mnemo_url, **pool_options(settings))
    pgq_pool: Any = await asyncpg.create_pool(pgqueuer_url, min_size=size, max_size=size)
    try:
        async with mnemo_pool.acquire() as conn:
            user_id = new_id()
            await conn.execute(
                "INSERT INTO users (id, username) VALUES ($1, 'bench-tasks')", user_id
            )
        mnemo = MnemoSide(mnemo_pool, user_id)
        sides: dict[Contender, Any] = {"mnemo": mnemo, "pgqueuer": PgqueuerSide(pgq_pool)}
        contenders = CONTENDERS + SINGLE + (WORKER if has_worker() else ())
        if len(contenders) == len(CONTENDERS):
            log("tasks: no mnemo_worker in this tree (dal.usecases.tasks): left out")
        await sides["pgqueuer"].install()
        log(
            f"tasks: {args.tasks_count} tasks per drain, claims of {args.tasks_batch}, "
            f"workers {counts}"
        )
        # A warm-up drain of each (statement caches, buffers), not counted.
        for contender in contenders:
            await sides.get(contender, mnemo).enqueue(min(args.tasks_count, 500))
            await drain(sides, contender, size, args.tasks_batch)
        results = [Result(workers) for workers in counts]
        for result in results:
            for contender in contenders:
                result.samples.setdefault(contender, [])
        for round_ in range(args.rounds):
            for i, result in enumerate(results):
                order = contenders if (round_ + i) % 2 == 0 else contenders[::-1]
                rate: dict[Contender, float] = {}
                for contender in order:
                    await sides.get(contender, mnemo).enqueue(args.tasks_count)
                    seconds = await drain(sides, contender, result.workers, args.tasks_batch)
                    rate[contender] = args.tasks_count / seconds
                    result.samples[contender].append(rate[contender])
                log(
                    f"tasks, {result.workers} worker(s), round {round_ + 1}/{args.rounds}: "
                    + "  ".join(f"{c} {rate[c]:>7,.0f}" for c in contenders)
                    + f" tasks/s  ({rate['mnemo'] / rate['pgqueuer']:.3f})"
                )
        return results
    finally:
        await mnemo_pool.close()
        await pgq_pool.close()


def render(results: list[Result]) -> str:
    header = ("workers", "pgqueuer tasks/s", "Mnemo tasks/s", "ratio", "rounds", "target", "result")
    rows = [
        (
            str(r.workers),
            f"{r.median('pgqueuer'):,.0f}",
            f"{r.median('mnemo'):,.0f}",
            f"{r.ratio:.3f}",
            f"{min(r.round_ratios):.2f}-{max(r.round_ratios):.2f}",
            f">= {TARGET:.2f}",
            "PASS" if r.passed else "BELOW",
        )
        for r in results
    ]
    text = "Mnemo: claim_tasks + complete_tasks per batch\n\n" + table(header, rows)
    titles = {
        "single": "complete_task each",
        "worker": "mnemo_worker",
        "pool": "Worker",
    }
    others = [c for c in OTHERS if all(r.worker_ratio(c) is not None for r in results)]
    if others:
        text += (
            "\n\nMnemo's other ways, same drains: claim_tasks + complete_task for each task;"
            " the mnemo_worker iterator (async with job, one job after the other);"
            " Worker(concurrency=batch) objects\n\n"
        ) + table(
            ("workers", "pgqueuer tasks/s", *(f"{titles[c]} tasks/s" for c in others), "ratios"),
            [
                (
                    str(r.workers),
                    f"{r.median('pgqueuer'):,.0f}",
                    *(f"{r.median(c):,.0f}" for c in others),
                    ", ".join(f"{r.worker_ratio(c):.3f}" for c in others),
                )
                for r in results
            ],
        )
    return text


def as_json(results: list[Result]) -> dict[str, Any]:
    return {
        "median_of": "tasks/s per contender over the rounds; ratio = Mnemo / pgqueuer",
        "results": [r.as_json() for r in results],
        "passed": all(r.passed for r in results),
    }
