"""Tasks: the lifecycle PostgreSQL enforces (every transition, through the gateways and
through raw SQL), the user's gateways (create, get, list, cancel; another user's task is not
found) and the queue (claim by effective priority with aging, lease, heartbeat, complete,
fail with retry and backoff, expired leases back to the queue), with concurrent workers on the
real database."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest
from pydantic import ValidationError

from dal.errors import IllegalTransition, InvalidInput, LeaseLost, NotFound
from dal.gateways import tasks
from dal.records.tasks import Task, TaskDraft
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
LEGAL = {
    ("pending", "running"),
    ("pending", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "pending"),
}


async def submit(db: Any, user: User, kind: str = "job", **fields: Any) -> Task:
    return await tasks.insert_task(db, user_id=user.id, draft=TaskDraft(kind=kind, **fields))


async def expire(db: Any, task_id: UUID) -> None:
    """The task's lease ends now (as if its worker had stopped long ago)."""
    await db.execute(
        "UPDATE tasks SET lease_until = now() - interval '1 second' WHERE id = $1", task_id
    )


async def runnable(db: Any, task_id: UUID) -> None:
    """The task's backoff is over."""
    await db.execute("UPDATE tasks SET run_after = now() WHERE id = $1", task_id)


async def in_status(db: Any, user: User, status: str) -> Task:
    """A task brought to ``status`` along legal transitions, by raw SQL."""
    task = await submit(db, user)
    path = {
        "pending": [],
        "running": ["running"],
        "succeeded": ["running", "succeeded"],
        "failed": ["running", "failed"],
        "cancelled": ["cancelled"],
    }[status]
    for step in path:
        await set_status(db, task.id, step)
    return await tasks.get_task(db, user_id=user.id, task_id=task.id)


async def set_status(db: Any, task_id: UUID, status: str) -> None:
    await db.execute(
        "UPDATE tasks SET status = $2,"
        " worker = CASE WHEN $2 = 'running' THEN 'sql' ELSE worker END,"
        " lease_until = CASE WHEN $2 = 'running' THEN now() + interval '1 minute' END"
        " WHERE id = $1",
        task_id,
        status,
    )


# --- the lifecycle, in SQL ----------------------------------------------------------------


async def test_the_transition_table_is_the_documented_lifecycle(pool: Any) -> None:
    rows = await pool.fetch("SELECT from_status, to_status FROM task_transitions")
    assert {(r["from_status"], r["to_status"]) for r in rows} == LEGAL


@pytest.mark.parametrize(
    ("source", "target"),
    [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b],
    ids=lambda s: s,
)
async def test_every_status_change_through_raw_sql(
    pool: Any, alice: User, source: str, target: str
) -> None:
    """No statement can skip the lifecycle: an UPDATE of the status itself is refused unless
    the pair is legal (SQLSTATE MNT01), and a legal one stamps its time."""
    task = await in_status(pool, alice, source)
    if (source, target) in LEGAL:
        await set_status(pool, task.id, target)
        after = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
        assert after.status == target
        stamp = {
            "running": after.started_at,
            "succeeded": after.finished_at,
            "failed": after.finished_at,
            "cancelled": after.cancelled_at,
            "pending": after.updated_at,
        }[target]
        assert stamp is not None and stamp >= task.updated_at
        if target != "running":
            assert after.lease_until is None
    else:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await set_status(pool, task.id, target)
        assert caught.value.sqlstate == "MNT01"
        assert f"{source} -> {target}" in str(caught.value)
        after = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
        assert after.status == source


@pytest.mark.parametrize("status", ["running", "succeeded", "failed", "cancelled"])
async def test_a_task_starts_pending(pool: Any, alice: User, status: str) -> None:
    with pytest.raises(asyncpg.PostgresError) as caught:
        await pool.execute(
            "INSERT INTO tasks (id, user_id, kind, title, status, worker, lease_until)"
            " VALUES (gen_random_uuid(), $1, 'job', '', $2, 'w', now())",
            alice.id,
            status,
        )
    assert caught.value.sqlstate == "MNT01"


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
async def test_a_final_tasks_outcome_cannot_be_rewritten(
    pool: Any, alice: User, status: str
) -> None:
    task = await in_status(pool, alice, status)
    with pytest.raises(asyncpg.PostgresError):
        await pool.execute("UPDATE tasks SET result = '1', attempts = 9 WHERE id = $1", task.id)


async def test_a_running_task_needs_a_worker_and_a_lease(pool: Any, alice: User) -> None:
    task = await submit(pool, alice)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE tasks SET status = 'running' WHERE id = $1", task.id)


# --- a user's tasks -----------------------------------------------------------------------


async def test_create_and_get(pool: Any, alice: User) -> None:
    conversation = await make_conversation(pool, alice)
    task = await submit(
        pool,
        alice,
        "research",
        title="EV market",
        description="find out",
        priority=5,
        input={"q": "ev"},
        max_attempts=2,
        conversation_id=conversation.id,
        thread_id="t-1",
    )
    assert (task.status, task.attempts, task.priority, task.input) == ("pending", 0, 5, {"q": "ev"})
    assert (task.result, task.error, task.worker, task.started_at) == (None, None, None, None)
    assert task.conversation_id == conversation.id and task.thread_id == "t-1"
    assert await tasks.get_task(pool, user_id=alice.id, task_id=task.id) == task


async def test_another_users_task_and_conversation_are_not_found(
    pool: Any, alice: User, bob: User
) -> None:
    task = await submit(pool, alice)
    with pytest.raises(NotFound):
        await tasks.get_task(pool, user_id=bob.id, task_id=task.id)
    with pytest.raises(NotFound):
        await tasks.cancel_task(pool, user_id=bob.id, task_id=task.id)
    assert (await tasks.list_tasks(pool, user_id=bob.id)).items == []
    theirs = await make_conversation(pool, alice)
    with pytest.raises(NotFound):
        await submit(pool, bob, conversation_id=theirs.id)
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", bob.id) == 0
    assert (await tasks.get_task(pool, user_id=alice.id, task_id=task.id)).status == "pending"


async def test_a_deleted_conversation_unlinks_its_tasks(pool: Any, alice: User) -> None:
    conversation = await make_conversation(pool, alice)
    task = await in_status(pool, alice, "succeeded")
    await pool.execute(
        "UPDATE tasks SET conversation_id = $2 WHERE id = $1", task.id, conversation.id
    )
    await pool.execute("DELETE FROM conversations WHERE id = $1", conversation.id)
    assert (await tasks.get_task(pool, user_id=alice.id, task_id=task.id)).conversation_id is None


def test_drafts_are_bounded() -> None:
    for bad in (
        {"kind": ""},
        {"kind": "has space"},
        {"kind": "k" * 201},
        {"kind": "k", "priority": 1001},
        {"kind": "k", "max_attempts": 0},
        {"kind": "k", "title": "\x00"},
        {"kind": "k", "input": {"n": 2**64}},
    ):
        with pytest.raises(ValidationError):
            TaskDraft.model_validate(bad)


async def test_list_pages_newest_first_with_filters(pool: Any, alice: User) -> None:
    conversation = await make_conversation(pool, alice)
    made = [
        await submit(pool, alice, "a" if i % 2 else "b", conversation_id=conversation.id)
        for i in range(7)
    ]
    await tasks.cancel_task(pool, user_id=alice.id, task_id=made[3].id)
    seen: list[Task] = []
    cursor = None
    while True:
        page = await tasks.list_tasks(pool, user_id=alice.id, limit=3, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [t.id for t in seen] == [t.id for t in reversed(made)]
    only_a = await tasks.list_tasks(pool, user_id=alice.id, kind="a")
    assert [t.id for t in only_a.items] == [t.id for t in reversed(made) if t.kind == "a"]
    cancelled = await tasks.list_tasks(pool, user_id=alice.id, status="cancelled")
    assert [t.id for t in cancelled.items] == [made[3].id]
    pending_b = await tasks.list_tasks(pool, user_id=alice.id, status="pending", kind="b")
    assert len(pending_b.items) == 4
    linked = await tasks.list_tasks(
        pool, user_id=alice.id, conversation_id=conversation.id, status="pending", limit=2
    )
    assert [t.id for t in linked.items] == [made[6].id, made[5].id] and linked.next_cursor
    with pytest.raises(InvalidInput):
        await tasks.list_tasks(pool, user_id=alice.id, cursor="!!")
    with pytest.raises(InvalidInput):
        await tasks.list_tasks(pool, user_id=alice.id, status="done")  # type: ignore[arg-type]


async def pages(db: Any, user: User, limit: int, **filters: Any) -> list[Task]:
    """Every task of a list by priority, paged through ``limit`` at a time."""
    seen: list[Task] = []
    cursor = None
    while True:
        page = await tasks.list_tasks(
            db, user_id=user.id, order="priority", limit=limit, cursor=cursor, **filters
        )
        assert len(page.items) <= limit
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_list_by_priority_pages_across_equal_priorities(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await make_conversation(pool, alice)
    priorities = [0, 5, -3, 5, 0, 1000, 5, -1000, 0, 5, 1]
    made = [
        await submit(
            pool,
            alice,
            "a" if i % 2 else "b",
            priority=p,
            conversation_id=conversation.id if i % 3 else None,
        )
        for i, p in enumerate(priorities)
    ]
    await submit(pool, bob, priority=999)  # someone else's
    await tasks.cancel_task(pool, user_id=alice.id, task_id=made[3].id)
    # highest priority first, then newest (ids are UUIDv7: the later, the larger)
    expected = sorted(made, key=lambda t: (t.priority, t.id.int), reverse=True)
    assert [t.priority for t in expected][:5] == [1000, 5, 5, 5, 5]
    for limit in (1, 2, 3, 4, 50):  # page boundaries inside the runs of equal priorities
        assert [t.id for t in await pages(pool, alice, limit)] == [t.id for t in expected]

    def ids(keep: Any) -> list[UUID]:
        return [t.id for t in expected if keep(t)]

    kind_a = await pages(pool, alice, 2, kind="a")
    assert [t.id for t in kind_a] == ids(lambda t: t.kind == "a")
    pending = await pages(pool, alice, 2, status="pending")
    assert [t.id for t in pending] == ids(lambda t: t.id != made[3].id)
    pending_b = await pages(pool, alice, 2, status="pending", kind="b")
    assert [t.id for t in pending_b] == ids(lambda t: t.id != made[3].id and t.kind == "b")
    linked = await pages(pool, alice, 2, conversation_id=conversation.id)
    assert [t.id for t in linked] == ids(lambda t: t.conversation_id == conversation.id)
    linked_pending_a = await pages(
        pool, alice, 1, conversation_id=conversation.id, status="pending", kind="a"
    )
    assert [t.id for t in linked_pending_a] == ids(
        lambda t: t.conversation_id == conversation.id and t.id != made[3].id and t.kind == "a"
    )
    assert await pages(pool, bob, 1, conversation_id=conversation.id) == []


async def test_a_cursor_keeps_its_order_and_a_bad_one_is_refused(pool: Any, alice: User) -> None:
    for priority in (1, 2, 3):
        await submit(pool, alice, priority=priority)
    newest = await tasks.list_tasks(pool, user_id=alice.id, limit=1)
    by_priority = await tasks.list_tasks(pool, user_id=alice.id, order="priority", limit=1)
    assert newest.next_cursor and by_priority.next_cursor
    with pytest.raises(InvalidInput, match="cursor"):
        await tasks.list_tasks(pool, user_id=alice.id, order="priority", cursor=newest.next_cursor)
    with pytest.raises(InvalidInput, match="cursor"):
        await tasks.list_tasks(pool, user_id=alice.id, cursor=by_priority.next_cursor)
    # a priority cursor's priority is a task's: within the bounds
    outside = tasks.encode_task_priority_cursor(
        newest.items[0].model_copy(update={"priority": 5000})
    )
    for bad in ("!!", "AAAA", outside):
        with pytest.raises(InvalidInput, match="cursor"):
            await tasks.list_tasks(pool, user_id=alice.id, order="priority", cursor=bad)
    with pytest.raises(InvalidInput, match="order"):
        await tasks.list_tasks(pool, user_id=alice.id, order="oldest")  # type: ignore[arg-type]


async def test_cancel_pending_running_and_finished(pool: Any, alice: User) -> None:
    pending = await submit(pool, alice)
    cancelled = await tasks.cancel_task(pool, user_id=alice.id, task_id=pending.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    again = await tasks.cancel_task(pool, user_id=alice.id, task_id=pending.id)
    assert again.status == "cancelled" and again.cancelled_at == cancelled.cancelled_at
    await submit(pool, alice)
    running = (await tasks.claim_tasks(pool, kinds=["job"], worker="w"))[0]
    await tasks.cancel_task(pool, user_id=alice.id, task_id=running.id)
    with pytest.raises(LeaseLost):  # its worker finds it gone
        await tasks.complete_task(pool, task_id=running.id, worker="w", result=1)
    done = await in_status(pool, alice, "succeeded")
    with pytest.raises(IllegalTransition) as caught:
        await tasks.cancel_task(pool, user_id=alice.id, task_id=done.id)
    assert caught.value.code == "illegal_transition" and "succeeded -> cancelled" in str(
        caught.value
    )


# --- the queue ----------------------------------------------------------------------------


async def test_claim_heartbeat_complete(pool: Any, alice: User) -> None:
    task = await submit(pool, alice, input={"n": 1})
    assert await tasks.claim_tasks(pool, kinds=["other"], worker="w1") == []
    [claimed] = await tasks.claim_tasks(pool, kinds=["job", "other"], worker="w1", lease_seconds=30)
    assert (claimed.id, claimed.status, claimed.worker, claimed.attempts) == (
        task.id,
        "running",
        "w1",
        1,
    )
    assert claimed.started_at is not None and claimed.lease_until is not None
    assert timedelta(seconds=29) < claimed.lease_until - claimed.started_at <= timedelta(seconds=31)
    assert await tasks.claim_tasks(pool, kinds=["job"], worker="w2") == []  # never twice
    with pytest.raises(LeaseLost):
        await tasks.heartbeat_task(pool, task_id=task.id, worker="w2")
    beaten = await tasks.heartbeat_task(pool, task_id=task.id, worker="w1", lease_seconds=600)
    assert beaten.lease_until is not None and beaten.lease_until > claimed.lease_until
    with pytest.raises(LeaseLost):
        await tasks.complete_task(pool, task_id=task.id, worker="w2", result=None)
    done = await tasks.complete_task(pool, task_id=task.id, worker="w1", result={"ok": True})
    assert (done.status, done.result, done.lease_until) == ("succeeded", {"ok": True}, None)
    assert done.finished_at is not None
    with pytest.raises(LeaseLost):  # once
        await tasks.complete_task(pool, task_id=task.id, worker="w1", result=None)


async def test_claim_bounds(pool: Any) -> None:
    for kwargs in ({"limit": 0}, {"lease_seconds": 0.5}, {"worker": ""}):
        args: dict[str, Any] = {"kinds": ["job"], "worker": "w", **kwargs}
        with pytest.raises(InvalidInput):
            await tasks.claim_tasks(pool, **args)


async def test_fail_retries_with_exponential_backoff_then_fails_for_good(
    pool: Any, alice: User
) -> None:
    task = await submit(pool, alice, max_attempts=3)
    for attempt, delay in ((1, 10.0), (2, 20.0)):
        [claimed] = await tasks.claim_tasks(pool, kinds=["job"], worker="w")
        assert claimed.attempts == attempt
        failed = await tasks.fail_task(
            pool, task_id=task.id, worker="w", error={"n": attempt}, backoff_base_seconds=10
        )
        assert (failed.status, failed.error, failed.worker) == ("pending", {"n": attempt}, None)
        waited = (failed.run_after - failed.updated_at).total_seconds()
        assert delay - 0.5 < waited < delay + 0.5
        assert await tasks.claim_tasks(pool, kinds=["job"], worker="w") == []  # backing off
        await runnable(pool, task.id)
    await tasks.claim_tasks(pool, kinds=["job"], worker="w")
    final = await tasks.fail_task(pool, task_id=task.id, worker="w", error="boom")
    assert (final.status, final.attempts, final.error) == ("failed", 3, "boom")
    assert final.finished_at is not None


async def test_backoff_is_capped_and_retry_false_fails_at_once(pool: Any, alice: User) -> None:
    task = await submit(pool, alice, max_attempts=50)
    await pool.execute("UPDATE tasks SET attempts = 40 WHERE id = $1", task.id)
    await tasks.claim_tasks(pool, kinds=["job"], worker="w")
    failed = await tasks.fail_task(
        pool, task_id=task.id, worker="w", error=None, backoff_cap_seconds=60
    )
    assert (failed.run_after - failed.updated_at).total_seconds() == pytest.approx(60, abs=0.5)
    await runnable(pool, task.id)
    await tasks.claim_tasks(pool, kinds=["job"], worker="w")
    final = await tasks.fail_task(pool, task_id=task.id, worker="w", error="no", retry=False)
    assert (final.status, final.attempts) == ("failed", 42)
    with pytest.raises(InvalidInput):
        await tasks.fail_task(
            pool, task_id=task.id, worker="w", error=None, backoff_base_seconds=-1
        )


async def test_an_expired_lease_returns_the_task_and_its_worker_loses_it(
    pool: Any, alice: User
) -> None:
    task = await submit(pool, alice, max_attempts=2)
    await tasks.claim_tasks(pool, kinds=["job"], worker="killed", lease_seconds=1)
    await asyncio.sleep(1.1)  # the lease runs out for real
    # The claim that finds it expired returns it to the queue; the next one takes it.
    assert await tasks.claim_tasks(pool, kinds=["job"], worker="w2") == []
    back = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert back.status == "pending" and back.error == {
        "code": "lease_expired",
        "worker": "killed",
        "attempt": 1,
    }
    [again] = await tasks.claim_tasks(pool, kinds=["job"], worker="w2")
    assert (again.id, again.worker, again.attempts) == (task.id, "w2", 2)
    for late in (
        tasks.complete_task(pool, task_id=task.id, worker="killed", result=1),
        tasks.fail_task(pool, task_id=task.id, worker="killed", error=1),
        tasks.heartbeat_task(pool, task_id=task.id, worker="killed"),
    ):
        with pytest.raises(LeaseLost):
            await late
    # Its last attempt expiring too: failed for good.
    await expire(pool, task.id)
    await tasks.claim_tasks(pool, kinds=["job"], worker="w3")
    final = await tasks.get_task(pool, user_id=alice.id, task_id=task.id)
    assert (final.status, final.attempts, final.error["code"]) == ("failed", 2, "lease_expired")


async def test_an_expired_worker_cannot_complete_before_the_requeue(pool: Any, alice: User) -> None:
    task = await submit(pool, alice)
    await tasks.claim_tasks(pool, kinds=["job"], worker="w")
    await expire(pool, task.id)
    with pytest.raises(LeaseLost):
        await tasks.complete_task(pool, task_id=task.id, worker="w", result=1)


async def test_priority_then_age_then_aging(pool: Any, alice: User) -> None:
    old_low = await submit(pool, alice, title="old low", priority=0)
    high = await submit(pool, alice, title="high", priority=10)
    new_low = await submit(pool, alice, title="new low", priority=0)
    first = await tasks.claim_tasks(pool, kinds=["job"], worker="w", limit=3)
    assert [t.id for t in first] == [high.id, old_low.id, new_low.id]
    # Aging: a priority-0 task runnable for 11 minutes beats a fresh priority-10 one
    # (one point per minute waited), and a priority-0 task runnable for 9 minutes does not.
    waited = await submit(pool, alice, title="waited", kind="k")
    fresh = await submit(pool, alice, title="fresh", kind="k", priority=10)
    await pool.execute(
        "UPDATE tasks SET run_after = now() - interval '11 minutes' WHERE id = $1", waited.id
    )
    [picked] = await tasks.claim_tasks(pool, kinds=["k"], worker="w")
    assert picked.id == waited.id
    await tasks.cancel_task(pool, user_id=alice.id, task_id=fresh.id)
    waited = await submit(pool, alice, title="waited", kind="k")
    fresh = await submit(pool, alice, title="fresh", kind="k", priority=10)
    await pool.execute(
        "UPDATE tasks SET run_after = now() - interval '9 minutes' WHERE id = $1", waited.id
    )
    [picked] = await tasks.claim_tasks(pool, kinds=["k"], worker="w")
    assert picked.id == fresh.id


async def test_kinds_are_merged_in_queue_order(pool: Any, alice: User) -> None:
    made = [
        await submit(pool, alice, kind, priority=p) for kind, p in [("a", 1), ("b", 3), ("a", 2)]
    ]
    claimed = await tasks.claim_tasks(pool, kinds=["a", "b", "a"], worker="w", limit=2)
    assert [t.id for t in claimed] == [made[1].id, made[2].id]


WORKERS, TASKS = 8, 500


async def test_concurrent_workers_run_each_task_exactly_once(
    settings: Settings, pool: Any, alice: User
) -> None:
    """WORKERS workers claim from one queue at once; a tenth of the tasks fail their first
    attempt (retried at once); one worker is 'killed' holding a task, which runs again after
    its lease. Every task succeeds exactly once, none is lost."""
    await pool.execute(
        "INSERT INTO tasks (id, user_id, kind, title, input)"
        " SELECT gen_random_uuid(), $1, 'job', 't' || i, jsonb_build_object('i', i)"
        "   FROM generate_series(1, $2) AS i",
        alice.id,
        TASKS,
    )
    [orphan] = await tasks.claim_tasks(pool, kinds=["job"], worker="killed", lease_seconds=1)
    completed: Counter[UUID] = Counter()
    failed_once: set[UUID] = set()

    async def work(name: str) -> None:
        idle = 0
        while idle < 20:
            claimed = await tasks.claim_tasks(pool, kinds=["job"], worker=name, limit=5)
            if not claimed:
                idle += 1
                await asyncio.sleep(0.1)
                continue
            idle = 0
            for task in claimed:
                if task.input["i"] % 10 == 0 and task.attempts == 1:
                    await tasks.fail_task(
                        pool, task_id=task.id, worker=name, error="flaky", backoff_base_seconds=0
                    )
                    failed_once.add(task.id)
                    continue
                await tasks.complete_task(pool, task_id=task.id, worker=name, result=name)
                completed[task.id] += 1

    await asyncio.wait_for(asyncio.gather(*(work(f"w{n}") for n in range(WORKERS))), timeout=120)
    assert len(completed) == TASKS and set(completed.values()) == {1}
    rows = await pool.fetch("SELECT id, status, attempts, input FROM tasks")
    assert {r["status"] for r in rows} == {"succeeded"}
    expected = {r["id"]: 1 + (r["input"]["i"] % 10 == 0) for r in rows}
    expected[orphan.id] += 1  # its first attempt was the killed worker's
    assert {r["id"]: r["attempts"] for r in rows} == expected
    assert len(failed_once) == TASKS // 10


# --- session state ------------------------------------------------------------------------


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Tasks, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    task = await run.one("insert_task", lambda: submit(pool, user))
    other = await run.one("insert_task", lambda: submit(pool, user))
    done = await run.one("insert_task", lambda: submit(pool, user, "done"))
    conversation = await run.one("make_conversation", lambda: make_conversation(pool, user))
    await run(
        [
            ("insert_task missing", lambda: submit(pool, user, conversation_id=user.id)),
            ("get_task", lambda: tasks.get_task(pool, user_id=user.id, task_id=task.id)),
            ("get_task missing", lambda: tasks.get_task(pool, user_id=user.id, task_id=user.id)),
            ("list_tasks", lambda: tasks.list_tasks(pool, user_id=user.id, limit=1)),
            (
                "list_tasks status",
                lambda: tasks.list_tasks(pool, user_id=user.id, status="pending", kind="job"),
            ),
            (
                "list_tasks conversation",
                lambda: tasks.list_tasks(pool, user_id=user.id, conversation_id=conversation.id),
            ),
            (
                "list_tasks by priority",
                lambda: tasks.list_tasks(pool, user_id=user.id, order="priority", limit=1),
            ),
            (
                "list_tasks status by priority",
                lambda: tasks.list_tasks(
                    pool, user_id=user.id, status="pending", kind="job", order="priority"
                ),
            ),
            (
                "list_tasks conversation by priority",
                lambda: tasks.list_tasks(
                    pool, user_id=user.id, conversation_id=conversation.id, order="priority"
                ),
            ),
            ("claim_tasks", lambda: tasks.claim_tasks(pool, kinds=["job"], worker="w")),
            ("claim_tasks done", lambda: tasks.claim_tasks(pool, kinds=["done"], worker="w")),
            ("heartbeat_task", lambda: tasks.heartbeat_task(pool, task_id=task.id, worker="w")),
            (
                "heartbeat_task lost",
                lambda: tasks.heartbeat_task(pool, task_id=task.id, worker="x"),
            ),
            (
                "fail_task",
                lambda: tasks.fail_task(pool, task_id=task.id, worker="w", error="e"),
            ),
            (
                "complete_task",
                lambda: tasks.complete_task(pool, task_id=done.id, worker="w", result=1),
            ),
            (
                "complete_tasks",
                lambda: tasks.complete_tasks(pool, worker="w", results={done.id: 2, user.id: 3}),
            ),
            (
                "complete_task lost",
                lambda: tasks.complete_task(pool, task_id=done.id, worker="w", result=1),
            ),
            ("cancel_task", lambda: tasks.cancel_task(pool, user_id=user.id, task_id=other.id)),
            (
                "cancel_task illegal",
                lambda: tasks.cancel_task(pool, user_id=user.id, task_id=done.id),
            ),
        ]
    )


async def test_complete_tasks_completes_a_batch_in_one_statement(pool: Any, alice: User) -> None:
    """Each task held by the worker succeeds with its own result; one it does not hold (lost
    to another worker, or never claimed) is left out, unchanged."""
    for _ in range(3):
        await submit(pool, alice, "batch")
    claimed = await tasks.claim_tasks(pool, kinds=["batch"], worker="w1", limit=3)
    assert len(claimed) == 3
    unclaimed = await submit(pool, alice, "other")
    stolen = claimed[0]
    await expire(pool, stolen.id)
    await tasks.claim_tasks(pool, kinds=["batch"], worker="w2", limit=1)  # requeues it
    [retaken] = await tasks.claim_tasks(pool, kinds=["batch"], worker="w2", limit=1)
    assert retaken.id == stolen.id
    results = {t.id: {"n": i} for i, t in enumerate(claimed)} | {unclaimed.id: "no"}
    done = await tasks.complete_tasks(pool, worker="w1", results=results)
    assert {t.id: t.result for t in done} == {t.id: results[t.id] for t in claimed[1:]}
    assert all(t.status == "succeeded" and t.finished_at is not None for t in done)
    assert (await tasks.get_task(pool, user_id=alice.id, task_id=stolen.id)).worker == "w2"
    assert (await tasks.get_task(pool, user_id=alice.id, task_id=unclaimed.id)).status == "pending"
    assert await tasks.complete_tasks(pool, worker="w1", results={}) == []
    with pytest.raises(InvalidInput):
        await tasks.complete_tasks(
            pool, worker="w1", results={UUID(int=i): None for i in range(1001)}
        )
