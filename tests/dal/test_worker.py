"""Workers (dal.usecases.tasks): many workers run every task exactly once; a failing handler
is retried with backoff; a worker killed mid-task has its task run again after the lease, one
stopped gives it back at once; an idle worker is woken by NOTIFY long before its poll, also
after its listener's backend was killed; a cancelled task's handler is cancelled. Real
PostgreSQL throughout; the waits below are generous functional bounds, not timings."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest

from dal.database import open_pool
from dal.errors import InvalidInput, LeaseLost
from dal.gateways import tasks
from dal.records.tasks import Task, TaskDraft
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import tasks as workers
from dal.usecases.tasks import LISTENER_NAME, Job, Worker, mnemo_worker
from tests.dal.conftest import make_user
from tests.support import free_port

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

# Long enough that a test passing within WITHIN seconds was not woken by the poll.
NO_POLL = 60.0
WITHIN = 10.0


async def submit(db: Any, user: User, kind: str = "job", **fields: Any) -> Task:
    return await tasks.insert_task(db, user_id=user.id, draft=TaskDraft(kind=kind, **fields))


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0) -> None:
    """Return once ``check()`` is true; TimeoutError (the test fails) after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 (a database's state, no event to wait on)
            await asyncio.sleep(0.05)


async def status_of(pool: Any, user: User, task_id: UUID) -> str:
    return (await tasks.get_task(pool, user_id=user.id, task_id=task_id)).status


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    """The workers run while the block runs; stopped (and awaited) on exit."""
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for worker in workers:
            worker.stop(grace_seconds=5)
        async with asyncio.timeout(30):
            await asyncio.gather(*runs)


async def listener_pids(pool: Any) -> set[int]:
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = $1 AND datname = current_database()",
        LISTENER_NAME,
    )
    return {r["pid"] for r in rows}


WORKERS, TASKS = 8, 2_000


async def test_eight_workers_run_each_task_exactly_once(settings: Settings, alice: User) -> None:
    """WORKERS workers of 4 handlers each share TASKS tasks: each succeeds exactly once, a
    handler runs once per attempt (a tenth of the tasks fail once and are retried)."""
    pool = await open_pool(settings.model_copy(update={"db_max_connections": 12}))
    try:
        await pool.execute(
            "INSERT INTO tasks (id, user_id, kind, title, input)"
            " SELECT gen_random_uuid(), $1, 'job', 't' || i, jsonb_build_object('i', i)"
            "   FROM generate_series(1, $2) AS i",
            alice.id,
            TASKS,
        )
        runs: Counter[UUID] = Counter()
        # Handlers running now and at most, per worker (a finished handler's slot takes the
        # next task while its completion commits; the handlers stay within concurrency).
        active: Counter[str] = Counter()
        peak: Counter[str] = Counter()

        async def handle(job: Job) -> Any:
            runs[job.task.id] += 1
            active[job.worker_id] += 1
            peak[job.worker_id] = max(peak[job.worker_id], active[job.worker_id])
            try:
                await asyncio.sleep(0)
                if job.task.input["i"] % 10 == 0 and job.task.attempts == 1:
                    raise RuntimeError("flaky")  # a tenth fail once, retried at once
                return {"i": job.task.input["i"], "by": job.worker_id}
            finally:
                active[job.worker_id] -= 1

        workers = [
            Worker(
                pool,
                handle,
                kinds=["job"],
                concurrency=4,
                worker_id=f"w{n}",
                backoff_base_seconds=0,
            )
            for n in range(WORKERS)
        ]

        async def all_done() -> bool:
            done: int = await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'succeeded'")
            return done == TASKS

        async with running(*workers):
            await until(all_done, timeout=300)
        rows = await pool.fetch("SELECT id, status, attempts, input, result FROM tasks")
        assert len(rows) == TASKS and len(runs) == TASKS
        expected = {r["id"]: 1 + (r["input"]["i"] % 10 == 0) for r in rows}
        assert dict(runs) == expected
        assert {r["id"]: r["attempts"] for r in rows} == expected
        assert {r["status"] for r in rows} == {"succeeded"}
        assert all(r["result"]["i"] == r["input"]["i"] for r in rows)
        by = Counter(r["result"]["by"] for r in rows)
        assert set(by) <= {f"w{n}" for n in range(WORKERS)} and len(by) > 1
        assert max(peak.values()) <= 4
    finally:
        await pool.close()


async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds(
    pool: Any, alice: User
) -> None:
    """Two failures, then success: attempts = 3, each retry claimed only once its backoff
    (0.2 s, then 0.4 s) was over, and the worker woke for it without its poll."""
    seen: list[Task] = []

    async def flaky(job: Job) -> Any:
        seen.append(job.task)
        if job.task.attempts < 3:
            raise RuntimeError(f"attempt {job.task.attempts} failed")
        return "done"

    worker = Worker(pool, flaky, kinds=["job"], poll_seconds=NO_POLL, backoff_base_seconds=0.2)
    task = await submit(pool, alice, max_attempts=3)
    async with running(worker):
        await until(lambda: _is(pool, alice, task.id, "succeeded"), timeout=WITHIN * 3)
    final = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert final.attempts == 3 and final.result == "done"
    assert final.error == {"type": "RuntimeError", "message": "attempt 2 failed"}
    assert [t.attempts for t in seen] == [1, 2, 3]
    for before, after in zip(seen, seen[1:], strict=False):
        assert after.started_at is not None and before.started_at is not None
        assert after.started_at >= after.run_after  # claimed once the backoff was over
        backoff = timedelta(seconds=0.2 * 2 ** (before.attempts - 1))
        assert after.run_after - before.started_at >= backoff


async def _is(pool: Any, user: User, task_id: UUID, status: str) -> bool:
    return await status_of(pool, user, task_id) == status


async def test_a_worker_killed_mid_task_has_its_task_run_again_after_the_lease(
    pool: Any, alice: User
) -> None:
    """A worker that dies (here: its heartbeats stop, it reports nothing) leaves its task to
    the lease; another worker, idle with no poll due, claims it once the lease expired."""
    task = await submit(pool, alice)
    async with aclosing(
        mnemo_worker(pool, kinds=["job"], lease_seconds=1, worker_id="dead")
    ) as jobs:
        dead = await anext(jobs)
        assert dead.task.id == task.id
    # (Closing the iterator stopped the job's heartbeats: as a killed process, it is silent.)
    ran: list[Task] = []

    async def handle(job: Job) -> Any:
        ran.append(job.task)
        return "second"

    worker = Worker(pool, handle, kinds=["job"], poll_seconds=NO_POLL, worker_id="alive")
    async with running(worker):
        await until(lambda: _is(pool, alice, task.id, "succeeded"), timeout=WITHIN * 3)
    final = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert final.attempts == 2 and final.result == "second" and final.worker == "alive"
    assert [t.error for t in ran] == [{"code": "lease_expired", "worker": "dead", "attempt": 1}]
    with pytest.raises(LeaseLost):
        await dead.complete("late")


async def test_a_stopped_worker_gives_its_task_back_at_once(pool: Any, alice: User) -> None:
    """Cancelling a worker's run cancels its handler and releases the task (pending, its
    attempt undone): another worker runs it without waiting for the lease."""
    task = await submit(pool, alice)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(job: Job) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    first = Worker(pool, stuck, kinds=["job"], lease_seconds=3600, worker_id="first")
    run = asyncio.create_task(first.run())
    async with asyncio.timeout(WITHIN):
        await started.wait()
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(run, WITHIN)
    assert cancelled.is_set()
    back = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert (back.status, back.attempts, back.worker) == ("pending", 0, None)

    async def finish(job: Job) -> Any:
        return job.task.attempts

    second = Worker(pool, finish, kinds=["job"], poll_seconds=NO_POLL, worker_id="second")
    async with running(second):
        await until(lambda: _is(pool, alice, task.id, "succeeded"), timeout=WITHIN)
    final = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert (final.attempts, final.result, final.worker) == (1, 1, "second")


async def test_stop_lets_running_handlers_finish_within_the_grace(pool: Any, alice: User) -> None:
    task = await submit(pool, alice)
    started, go_on = asyncio.Event(), asyncio.Event()

    async def slow(job: Job) -> Any:
        started.set()
        await go_on.wait()
        return "finished"

    worker = Worker(pool, slow, kinds=["job"])
    run = asyncio.create_task(worker.run())
    async with asyncio.timeout(WITHIN):
        await started.wait()
    worker.stop(grace_seconds=WITHIN * 3)
    go_on.set()
    await asyncio.wait_for(run, WITHIN * 3)
    final = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert (final.status, final.result) == ("succeeded", "finished")


@pytest.mark.parametrize("own_dsn", [False, True], ids=["the pool's arguments", "a dsn"])
async def test_an_idle_worker_is_woken_by_a_new_task_long_before_its_poll(
    pool: Any, settings: Settings, alice: User, own_dsn: bool
) -> None:
    done: list[str] = []

    async def handle(job: Job) -> Any:
        done.append(job.task.title)
        return None

    dsn = settings.database_url if own_dsn else None
    worker = Worker(pool, handle, kinds=["job"], poll_seconds=NO_POLL, dsn=dsn)
    async with running(worker):
        await until(lambda: _true(worker.listening and worker.waiting), timeout=WITHIN)
        # Waiting, its poll a minute away: only the notification can wake it in time.
        await submit(pool, alice, title="woken")
        await until(lambda: _true(done == ["woken"]), timeout=WITHIN)
        # Another kind's task does not concern it.
        other = await submit(pool, alice, kind="other")
        await until(lambda: _true(worker.waiting), timeout=WITHIN)
        assert await status_of(pool, alice, other.id) == "pending"


async def _true(value: bool) -> bool:
    return value


async def test_the_listener_reconnects_after_its_backend_is_killed_and_still_wakes(
    pool: Any, alice: User
) -> None:
    done: list[str] = []

    async def handle(job: Job) -> Any:
        done.append(job.task.title)
        return None

    worker = Worker(pool, handle, kinds=["job"], poll_seconds=NO_POLL)
    async with running(worker):
        await until(lambda: _true(worker.listening and worker.waiting), timeout=WITHIN)
        [before] = await listener_pids(pool)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", before)

        async def listening_again() -> bool:
            pids = await listener_pids(pool)
            return len(pids) == 1 and before not in pids and worker.listening and worker.waiting

        await until(listening_again, timeout=WITHIN)
        await submit(pool, alice, title="after the reconnect")
        await until(lambda: _true(done == ["after the reconnect"]), timeout=WITHIN)


async def test_a_cancelled_tasks_handler_is_cancelled(pool: Any, alice: User) -> None:
    """The user cancels a running task: its next heartbeat finds the lease gone, and the
    handler is cancelled (its task stays cancelled)."""
    task = await submit(pool, alice)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long(job: Job) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker(pool, long, kinds=["job"], lease_seconds=1)
    async with running(worker):
        async with asyncio.timeout(WITHIN):
            await started.wait()
        await tasks.cancel_task(pool, user_id=alice.id, task_id=task.id)
        async with asyncio.timeout(WITHIN):
            await cancelled.wait()
    assert await status_of(pool, alice, task.id) == "cancelled"


async def test_the_iterator_hands_out_jobs_and_releases_those_it_did_not(
    pool: Any, alice: User
) -> None:
    made = [await submit(pool, alice, title=str(n), priority=-n) for n in range(3)]
    async with aclosing(mnemo_worker(pool, kinds=["job"], batch=3)) as jobs:
        async for job in jobs:
            async with job:
                assert job.held
                await job.complete({"title": job.task.title})
            assert not job.held
            break
    after = [await tasks.get_task(pool, user_id=alice.id, task_id=t.id) for t in made]
    assert [(t.status, t.attempts) for t in after] == [
        ("succeeded", 1),
        ("pending", 0),
        ("pending", 0),
    ]
    assert after[0].result == {"title": "0"}


async def test_a_job_block_fails_on_an_exception_and_completes_on_a_clean_exit(
    pool: Any, alice: User
) -> None:
    bad = await submit(pool, alice, priority=1, max_attempts=1)
    good = await submit(pool, alice)
    async with aclosing(mnemo_worker(pool, kinds=["job"])) as jobs:
        async with await anext(jobs) as job:
            assert job.task.id == bad.id
            raise ValueError("no such topic")
        async with await anext(jobs) as job:
            assert job.task.id == good.id
    failed = await tasks.get_task(pool, user_id=alice.id, task_id=bad.id)
    assert failed.status == "failed"
    assert failed.error == {"type": "ValueError", "message": "no such topic"}
    assert await status_of(pool, alice, good.id) == "succeeded"


async def test_a_long_job_keeps_its_lease_by_heartbeats(pool: Any, alice: User) -> None:
    task = await submit(pool, alice)
    async with aclosing(mnemo_worker(pool, kinds=["job"], lease_seconds=1)) as jobs:
        job = await anext(jobs)
        first = job.task.lease_until
        assert first is not None

        async def extended() -> bool:
            return job.task.lease_until is not None and job.task.lease_until > first

        await until(extended, timeout=WITHIN)
        # Other workers find nothing to take meanwhile.
        assert await tasks.claim_tasks(pool, kinds=["job"], worker="other") == []
        await job.complete(1)
    assert await status_of(pool, alice, task.id) == "succeeded"


@pytest.mark.parametrize(
    "arguments",
    [{"kinds": []}, {"kinds": "job"}, {"kinds": ["job"], "lease_seconds": 0.5}],
    ids=["no kinds", "a string", "short lease"],
)
async def test_bad_arguments_are_refused_at_once(pool: Any, arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Worker(pool, lambda job: asyncio.sleep(0), **arguments)
    with pytest.raises(ValueError):
        await anext(mnemo_worker(pool, **arguments))


async def test_the_notification_names_the_kind_and_is_sent_on_every_return_to_pending(
    pool: Any, settings: Settings, alice: User
) -> None:
    """The trigger: a created task, a retry and an expired lease each NOTIFY mnemo_tasks with
    the kind; a claim, a heartbeat and a completion do not."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.add_listener("mnemo_tasks", lambda *args: heard.put_nowait(args[3]))
        task = await submit(pool, alice, kind="research")
        assert await asyncio.wait_for(heard.get(), WITHIN) == "research"
        [claimed] = await tasks.claim_tasks(pool, kinds=["research"], worker="w")
        await tasks.heartbeat_task(pool, task_id=task.id, worker="w")
        await tasks.fail_task(pool, task_id=task.id, worker="w", error="e")  # retried
        assert await asyncio.wait_for(heard.get(), WITHIN) == "research"
        await pool.execute("UPDATE tasks SET run_after = now() WHERE id = $1", task.id)
        await tasks.claim_tasks(pool, kinds=["research"], worker="w")
        await pool.execute(
            "UPDATE tasks SET lease_until = now() - interval '1 second' WHERE id = $1", task.id
        )
        await tasks.claim_tasks(pool, kinds=["research"], worker="w")  # requeues it
        assert await asyncio.wait_for(heard.get(), WITHIN) == "research"
        await tasks.claim_tasks(pool, kinds=["research"], worker="w")
        await tasks.complete_task(pool, task_id=task.id, worker="w", result=1)
        await conn.execute("SELECT 1")  # every notification committed so far has arrived
        assert heard.empty()
        assert claimed.id == task.id
    finally:
        await conn.close()


async def test_get_task_wait_says_when_a_backoff_or_a_lease_ends(pool: Any, alice: User) -> None:
    assert await tasks.get_task_wait(pool, kinds=["job"]) is None
    task = await submit(pool, alice)
    assert await tasks.get_task_wait(pool, kinds=["job"]) <= 0  # type: ignore[operator]
    assert await tasks.get_task_wait(pool, kinds=["other"]) is None
    await tasks.claim_tasks(pool, kinds=["job"], worker="w", lease_seconds=600)
    wait = await tasks.get_task_wait(pool, kinds=["job"])
    assert wait is not None and 0 < wait <= 600
    await tasks.fail_task(pool, task_id=task.id, worker="w", error="e", backoff_base_seconds=300)
    wait = await tasks.get_task_wait(pool, kinds=["other", "job"])
    assert wait is not None and 0 < wait <= 300


async def test_release_task_undoes_the_claims_attempt(pool: Any, alice: User) -> None:
    task = await submit(pool, alice)
    await tasks.claim_tasks(pool, kinds=["job"], worker="w")
    with pytest.raises(LeaseLost):
        await tasks.release_task(pool, task_id=task.id, worker="x")
    released = await tasks.release_task(pool, task_id=task.id, worker="w")
    assert (released.status, released.attempts, released.worker) == ("pending", 0, None)
    with pytest.raises(LeaseLost):
        await tasks.release_task(pool, task_id=task.id, worker="w")


# --- group commit of completions --------------------------------------------------------


async def committed_together(pool: Any, ids: list[UUID]) -> Counter[str]:
    """How many of the tasks ``ids`` each completing transaction wrote (their rows' xmin: the
    transaction that wrote them last, their completion, as nothing updates them after it)."""
    rows = await pool.fetch(
        "SELECT xmin::text AS tx FROM tasks WHERE id = ANY ($1::uuid[]) AND status = 'succeeded'",
        ids,
    )
    return Counter(r["tx"] for r in rows)


async def test_handlers_finishing_together_commit_their_completions_together(
    pool: Any, settings: Settings, alice: User
) -> None:
    """A worker of 8 handlers that all finish at once: fewer completion statements (and
    transactions) than tasks, yet each handler's completion is committed when its
    ``complete`` returns (another connection reads the task succeeded right after)."""
    made = [await submit(pool, alice, title=str(n)) for n in range(16)]
    together = asyncio.Barrier(8)
    seen: dict[UUID, str] = {}
    other = await asyncpg.connect(settings.database_url)
    one_at_a_time = asyncio.Lock()
    try:

        async def handle(job: Job) -> Any:
            await together.wait()
            await job.complete(job.task.title)
            async with one_at_a_time:  # (one connection: one query at a time)
                seen[job.task.id] = await other.fetchval(
                    "SELECT status FROM tasks WHERE id = $1", job.task.id
                )
            assert job.task.status == "succeeded" and not job.held

        worker = Worker(pool, handle, kinds=["job"], concurrency=8, poll_seconds=NO_POLL)
        async with running(worker):
            await until(lambda: _true(len(seen) == len(made)), timeout=WITHIN * 3)
        assert set(seen.values()) == {"succeeded"}
        statements = worker._queue.completion_statements
        transactions = await committed_together(pool, [t.id for t in made])
        assert sum(transactions.values()) == len(made)
        # (the first of each 8 may go alone, the other 7 wait for it and go together)
        assert len(transactions) == statements <= len(made) // 2
        assert max(transactions.values()) >= 7
    finally:
        await other.close()


async def test_a_lost_lease_in_a_batch_fails_only_its_own_completion(
    pool: Any, alice: User
) -> None:
    """Three completions at once go as one statement; the task the worker no longer holds
    (the user cancelled it) raises LeaseLost for its job alone, the two others succeed."""
    made = [await submit(pool, alice, title=str(n), priority=-n) for n in range(3)]
    async with aclosing(mnemo_worker(pool, kinds=["job"], batch=3, worker_id="w")) as jobs:
        held = [await anext(jobs) for _ in made]
        await tasks.cancel_task(pool, user_id=alice.id, task_id=held[1].task.id)
        outcomes = await asyncio.gather(
            *(job.complete({"n": job.task.title}) for job in held), return_exceptions=True
        )
    assert isinstance(outcomes[1], LeaseLost)
    assert held[1].lost and not held[1].held
    for job, outcome in zip(held[::2], outcomes[::2], strict=True):
        assert isinstance(outcome, Task) and outcome.status == "succeeded"
        assert job.task == outcome and not job.held and not job.lost
    transactions = await committed_together(pool, [t.id for t in made])
    assert list(transactions.values()) == [2]  # one statement, two tasks
    assert await status_of(pool, alice, made[1].id) == "cancelled"


async def test_a_cancelled_completion_leaves_the_others_and_its_job_consistent(
    pool: Any, settings: Settings, alice: User
) -> None:
    """While a completion is under way (its row locked by another transaction, it waits),
    three more queue for the next batch. One of those is cancelled before it is sent: it is
    withdrawn, its job still held, its task still running. The one under way is cancelled
    too: it still ends with its outcome (the job done, the task succeeded) before the
    cancellation goes on. The others succeed, together."""
    made = [await submit(pool, alice, title=str(n), priority=-n) for n in range(4)]
    locker = await asyncpg.connect(settings.database_url)
    try:
        async with aclosing(mnemo_worker(pool, kinds=["job"], batch=4)) as jobs:
            held = [await anext(jobs) for _ in made]
            lock = locker.transaction()
            await lock.start()
            await locker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", made[0].id)
            first = asyncio.create_task(held[0].complete("first"))

            async def blocked() -> bool:
                waiting: int = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return waiting > 0

            await until(blocked, timeout=WITHIN)
            rest = [asyncio.create_task(job.complete(job.task.title)) for job in held[1:]]
            await asyncio.sleep(0)
            rest[0].cancel()
            first.cancel()
            await asyncio.sleep(0.1)  # (the cancellations delivered while the row is locked)
            assert not first.done()  # its statement under way: it waits for the outcome
            await lock.commit()
            with pytest.raises(asyncio.CancelledError):
                await rest[0]
            with pytest.raises(asyncio.CancelledError):
                await first
            done = await asyncio.gather(*rest[1:])
            assert held[0].task.status == "succeeded" and not held[0].held
            assert held[1].held and not held[1].lost
            assert [t.status for t in done] == ["succeeded", "succeeded"]
            assert await status_of(pool, alice, made[1].id) == "running"
            assert (await held[1].complete("late")).result == "late"
    finally:
        await locker.close()
    transactions = await committed_together(pool, [t.id for t in made])
    assert sorted(transactions.values()) == [1, 1, 2]
    final = [await tasks.get_task(pool, user_id=alice.id, task_id=t.id) for t in made]
    assert [t.result for t in final] == ["first", "late", "2", "3"]


async def test_a_heartbeat_overtaken_by_the_completion_under_way_loses_nothing(
    pool: Any, settings: Settings, alice: User
) -> None:
    """The completion is under way (its row locked by another transaction) and a heartbeat
    queues behind it: once the row is free the heartbeat finds the task succeeded, and the job
    is done, not lost (the completion's statement has the last word)."""
    task = await submit(pool, alice)
    locker = await asyncpg.connect(settings.database_url)
    try:
        async with aclosing(mnemo_worker(pool, kinds=["job"], lease_seconds=1)) as jobs:
            job = await anext(jobs)
            lock = locker.transaction()
            await lock.start()
            await locker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task.id)
            completing = asyncio.create_task(job.complete("done"))

            async def blocked(count: int) -> bool:
                waiting: int = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return waiting >= count

            await until(lambda: blocked(1), timeout=WITHIN)
            await until(lambda: blocked(2), timeout=WITHIN)  # the next heartbeat, behind it
            await lock.commit()
            done = await completing
            assert done.status == "succeeded" and job.task == done
            assert not job.lost and not job.held
    finally:
        await locker.close()


async def test_a_result_that_is_not_json_fails_only_its_own_completion_in_a_batch(
    pool: Any, alice: User
) -> None:
    made = [await submit(pool, alice, title=str(n), priority=-n) for n in range(3)]
    async with aclosing(mnemo_worker(pool, kinds=["job"], batch=3)) as jobs:
        held = [await anext(jobs) for _ in made]
        outcomes = await asyncio.gather(
            held[0].complete(0),
            held[1].complete({1, 2}),
            held[2].complete(2),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], InvalidInput) and held[1].held
        assert [o.status for o in outcomes[::2]] == ["succeeded", "succeeded"]  # type: ignore[union-attr]
        await held[1].fail("not JSON", retry=False)
    assert [await status_of(pool, alice, t.id) for t in made] == [
        "succeeded",
        "failed",
        "succeeded",
    ]


# --- session state ------------------------------------------------------------------------


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Workers, for tests/test_session_state.py (their listener is a connection of its own,
    so the pool's stays clean)."""
    user = await run.one("make_user", lambda: make_user(pool))
    for title in ("complete", "fail", "release"):
        await run.one("insert_task", lambda t=title: submit(pool, user, "session", title=t))

    async def iterate() -> None:
        # (through the module: the session test records calls by patching its attributes)
        async with aclosing(workers.mnemo_worker(pool, kinds=["session"], batch=3)) as jobs:
            await (await anext(jobs)).complete(1)
            await (await anext(jobs)).fail("no", retry=False)
            job = await anext(jobs)
            await job.heartbeat()
            await job.release()

    async def work() -> None:
        await submit(pool, user, "session-worker")
        done = asyncio.Event()

        async def handle(job: Job) -> Any:
            await job.complete("done")
            done.set()

        worker = Worker(pool, handle, kinds=["session-worker"])
        runner = asyncio.create_task(worker.run())
        async with asyncio.timeout(WITHIN):
            await done.wait()
        worker.stop()
        await runner

    await run(
        [
            ("mnemo_worker", iterate),
            ("Worker.run", work),
            ("get_task_wait", lambda: tasks.get_task_wait(pool, kinds=["session"])),
            (
                "release_task lost",
                lambda: tasks.release_task(pool, task_id=user.id, worker="w"),
            ),
        ]
    )


async def test_a_result_that_is_not_json_fails_the_task(pool: Any, alice: User) -> None:
    task = await submit(pool, alice, max_attempts=1)

    async def odd(job: Job) -> Any:
        return {1, 2}  # a set: no JSON value

    async with running(Worker(pool, odd, kinds=["job"])):
        await until(lambda: _is(pool, alice, task.id, "failed"), timeout=WITHIN)
    final = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert final.error["type"] == "InvalidInput" and "JSON" in final.error["message"]


async def test_a_worker_rides_out_an_unreachable_database_and_stops_cleanly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims that fail (nothing listens on the port) are retried after a pause, nothing
    raises; stop() still ends the run."""
    unreachable = settings.model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
            "db_connection_timeout": 0.5,
        }
    )
    pool = await open_pool(unreachable, lazy=True)
    try:
        worker = Worker(pool, lambda job: asyncio.sleep(0), kinds=["job"], poll_seconds=0.2)
        run = asyncio.create_task(worker.run())

        async def retried() -> bool:
            return sum("claim failed" in r.getMessage() for r in caplog.records) >= 3

        await until(retried, timeout=WITHIN * 3)
        assert not run.done() and not worker.listening
        worker.stop()
        await asyncio.wait_for(run, WITHIN)
    finally:
        await pool.close()
