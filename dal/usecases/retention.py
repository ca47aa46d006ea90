"""Retention (README "Retention"): the policies of the settings enforced in bounded batches.

``run_retention`` walks each policy's candidates in key order, a batch at a time; each batch is
one short transaction that locks its candidates with SKIP LOCKED (one thread, or up to
``batch`` conversations; one a writer holds is left to the next run, never waited for) and
deletes at most ``batch`` rows of each table per statement (queries/retention.sql). A run
stopped anywhere leaves nothing half done, and the next run continues: what is deleted is
gone, and the rest is still a candidate (an expiring thread part-way through keeps its newest
checkpoint and what it needs).
With ``dry_run`` every batch runs its statements to the end and rolls back: the counts are what
a run would delete now, and nothing changes.
After each batch the run rests ``pause`` times as long as the batch took (RETENTION_PAUSE_RATIO,
1 by default: busy at most half the time), so that on a busy server the product's own queries
keep most of the CPU and disk; the rest grows with the load, as the batches slow down.

``RetentionScheduler`` runs it every RETENTION_INTERVAL_SECONDS while the app serves, in one
process of however many share the database: the one holding a session advisory lock on a
connection of its own (outside the pool), until it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from dal.database import Executor, translating
from dal.errors import DomainError
from dal.gateways import retention as gateway
from dal.records.retention import RetentionPolicy, RetentionReport
from dal.settings import Settings

Pool: TypeAlias = "asyncpg.Pool[Any]"
Progress: TypeAlias = Callable[[RetentionReport], Awaitable[None] | None]

DEFAULT_BATCH = 1000
MAX_BATCH = 100_000
DEFAULT_PAUSE = 1.0
MAX_PAUSE = 100.0
# The key of the runner's advisory lock (lock_retention_runner): "mnemoret" in ASCII.
RUNNER_LOCK = 0x6D6E656D6F726574
RUNNER_NAME = "mnemo-retention"
_NIL = UUID(int=0)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)

_log = logging.getLogger(__name__)


def policy_of(settings: Settings) -> RetentionPolicy:
    """The policies the settings set (RETENTION_THREAD_DAYS, ..._KEEP_CHECKPOINTS,
    ..._CONVERSATION_DAYS; 0 is off)."""
    return RetentionPolicy(
        thread_days=settings.retention_thread_days or None,
        keep_checkpoints=settings.retention_keep_checkpoints or None,
        conversation_days=settings.retention_conversation_days or None,
        overrides=settings.retention_overrides == "metadata",
    )


class _Run:
    """One run: its pool, clock and options, its running totals, and the rest it takes after
    each batch."""

    def __init__(
        self,
        pool: Pool,
        *,
        now: datetime,
        batch: int,
        dry_run: bool,
        pause: float,
        overrides: bool,
        progress: Progress | None,
    ) -> None:
        self.pool = pool
        self.now = now
        self.batch = batch
        self.dry_run = dry_run
        self.pause = pause
        self.overrides = overrides
        self.progress = progress
        self.busy = 0.0  # seconds the last batch took
        self.rested = 0.0
        self.started = time.monotonic()
        self.counts = dict.fromkeys(
            (
                "threads",
                "checkpoints",
                "checkpoint_blobs",
                "checkpoint_writes",
                "conversations",
                "messages",
                "batches",
            ),
            0,
        )

    def add(self, **counts: int) -> None:
        for kind, n in counts.items():
            self.counts[kind] += n

    def report(self) -> RetentionReport:
        return RetentionReport.from_values(
            {
                "now": self.now,
                "dry_run": self.dry_run,
                **self.counts,
                "seconds": round(time.monotonic() - self.started, 3),
                "rested_seconds": round(self.rested, 3),
            }
        )

    @contextlib.asynccontextmanager
    async def batch_transaction(self) -> AsyncIterator[Executor]:
        """One connection in one transaction: committed, or in a dry run rolled back; the time
        it took (waiting for a connection included) is ``busy``."""
        start = time.monotonic()
        try:
            with translating():
                async with self.pool.acquire() as conn:
                    tx = conn.transaction()
                    await tx.start()
                    try:
                        yield conn
                    except BaseException:
                        await tx.rollback()
                        raise
                    if self.dry_run:
                        await tx.rollback()
                    else:
                        await tx.commit()
        finally:
            self.busy = time.monotonic() - start

    async def tell(self) -> None:
        """After a batch: count it, show the totals, rest."""
        self.counts["batches"] += 1
        if self.progress is not None:
            maybe = self.progress(self.report())
            if maybe is not None:
                await maybe
        if self.pause > 0 and self.busy > 0:
            rest = self.busy * self.pause
            await asyncio.sleep(rest)
            self.rested += rest

    async def trim(self, conn: Executor, threads: list[gateway.TrimmedThread]) -> bool:
        """One batch of keep-N's two statements on these locked threads, counted; whether
        nothing is left to trim. A real batch ends here and commits (the next transaction takes
        the thread up again); a dry run cannot (it rolls back), so it goes on in its
        transaction until the thread is trimmed."""
        while True:
            checkpoints = await gateway.delete_excess_checkpoints(
                conn, threads=threads, now=self.now, batch=self.batch
            )
            swept = await gateway.delete_trim_leftovers(conn, threads=threads, batch=self.batch)
            self.add(
                checkpoints=checkpoints,
                checkpoint_blobs=swept.blobs,
                checkpoint_writes=swept.writes,
            )
            trimmed = max(checkpoints, swept.blobs, swept.writes) < self.batch
            if trimmed or not self.dry_run:
                return trimmed


async def _expire_threads(run: _Run, days: int) -> None:
    # One thread per transaction, locked FOR UPDATE. Its history goes oldest first, as keep-N
    # with keep=1 would take it (the newest checkpoint and what it needs stay: its blobs, its
    # writes, a delta channel's chain), a batch per transaction; the transaction that finds
    # nothing more to trim deletes what is left and the thread's row together, under the
    # re-check. So a graph resuming the thread at any moment finds its newest state whole (or
    # the thread gone), and a save that revives it (the re-check then keeps it) continues a
    # coherent, shorter history.
    after: tuple[datetime, str, UUID] = (_EPOCH, "", _NIL)
    while True:
        async with run.batch_transaction() as conn:
            locked = await gateway.list_expired_threads_locked(
                conn,
                thread_days=days,
                now=run.now,
                after=after,
                batch=1,
                overrides=run.overrides,
            )
            if not locked:
                return
            thread = locked[0]
            trimmed = await run.trim(
                conn, [gateway.TrimmedThread(thread.thread_id, thread.owner, 1)]
            )
            if trimmed:
                while True:  # the newest state and the row, in this one transaction
                    counts = await gateway.delete_expired_thread_rows(
                        conn, threads=locked, batch=run.batch
                    )
                    run.add(
                        checkpoints=counts.checkpoints,
                        checkpoint_blobs=counts.blobs,
                        checkpoint_writes=counts.writes,
                    )
                    if max(counts) < run.batch:
                        break
                run.add(threads=await gateway.delete_expired_threads(conn, threads=locked))
        if trimmed:
            after = (thread.updated_at, thread.thread_id, thread.owner)
        await run.tell()


async def _trim_threads(run: _Run, keep: int, thread_days: int | None) -> None:
    # One thread per transaction (locked FOR NO KEY UPDATE, the lock a save takes: a save
    # waits for one thread's statements at most), ranked once: the cursor moves past it when
    # nothing is left to trim, and only a thread with more than a batch to delete is taken
    # up again, by the next transaction.
    after: tuple[str, UUID] = ("", _NIL)
    again = False
    while True:
        async with run.batch_transaction() as conn:
            locked = await gateway.list_threads_for_trimming_locked(
                conn,
                keep_checkpoints=keep,
                thread_days=thread_days,
                now=run.now,
                after=after,
                batch=1,
                again=again,
                overrides=run.overrides,
            )
            if not locked:
                return
            trimmed = await run.trim(conn, locked)
        # Not trimmed: its checkpoints may be, but not its blobs or writes; the cursor stays
        # on it and the next transaction takes it up again.
        after, again = (locked[0].thread_id, locked[0].owner), not trimmed
        await run.tell()


async def _expire_conversations(run: _Run, days: int) -> None:
    after: tuple[datetime, UUID] = (_EPOCH, _NIL)
    while True:
        async with run.batch_transaction() as conn:
            locked = await gateway.list_expired_conversations_locked(
                conn,
                conversation_days=days,
                now=run.now,
                after=after,
                batch=run.batch,
                overrides=run.overrides,
            )
            if not locked:
                return
            conversations, messages = await gateway.delete_expired_conversations(
                conn, conversations=locked
            )
            run.add(conversations=conversations, messages=messages)
        after = (locked[-1].updated_at, locked[-1].id)
        await run.tell()


async def run_retention(
    pool: Pool,
    settings_or_policy: Settings | RetentionPolicy,
    *,
    now: datetime | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: Progress | None = None,
    pause: float | None = None,
) -> RetentionReport:
    """Enforce the policies once: expired threads, then keep-N, then expired conversations,
    each in batches of at most ``batch`` rows per table and statement. ``now`` is the run's
    clock (default: the time it starts): a row is judged by it, and no checkpoint created after
    it is deleted. ``progress`` sees the running totals after each batch. With ``dry_run``
    nothing changes and the report says what would go. After each batch the run rests
    ``pause`` times as long as the batch took (default: RETENTION_PAUSE_RATIO of the settings
    given, else 1; 0: no rest)."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1 to {MAX_BATCH}")
    if isinstance(settings_or_policy, RetentionPolicy):
        policy = settings_or_policy
        pause = DEFAULT_PAUSE if pause is None else pause
    else:
        policy = policy_of(settings_or_policy)
        pause = settings_or_policy.retention_pause_ratio if pause is None else pause
    if not 0 <= pause <= MAX_PAUSE:
        raise ValueError(f"pause must be 0 to {MAX_PAUSE:g}")
    run = _Run(
        pool,
        now=datetime.now(UTC) if now is None else now,
        batch=batch,
        dry_run=dry_run,
        pause=pause,
        overrides=policy.overrides,
        progress=progress,
    )
    if policy.thread_days is not None:
        await _expire_threads(run, policy.thread_days)
    if policy.keep_checkpoints is not None:
        await _trim_threads(run, policy.keep_checkpoints, policy.thread_days)
    if policy.conversation_days is not None:
        await _expire_conversations(run, policy.conversation_days)
    return run.report()


class RetentionScheduler:
    """Runs ``run_retention`` every ``interval`` seconds while started, if this process holds
    the runner's lock (taken on a connection of its own, kept until ``stop``; a lost
    connection gives it up, and the next tick tries again)."""

    def __init__(
        self,
        pool: Pool,
        policy: RetentionPolicy,
        *,
        interval: float,
        batch: int = DEFAULT_BATCH,
        pause: float = DEFAULT_PAUSE,
        timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.timeout = timeout
        self._conn: asyncpg.Connection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def is_runner(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def run_once(self, *, now: datetime | None = None) -> RetentionReport | None:
        """One run if this process is (or now becomes) the runner; None if another is."""
        if not await self._hold_lock():
            return None
        return await run_retention(
            self.pool, self.policy, now=now, batch=self.batch, pause=self.pause
        )

    async def _hold_lock(self) -> bool:
        if self.is_runner:
            return True
        self._conn = None
        # The pool's own connection arguments (asyncpg keeps them on the pool).
        pool: Any = self.pool
        args = tuple(pool._connect_args)
        options = dict(pool._connect_kwargs)
        server_settings = {**(options.get("server_settings") or {})}
        server_settings["application_name"] = RUNNER_NAME
        options.update(server_settings=server_settings, timeout=self.timeout)
        with translating():
            conn: asyncpg.Connection[Any] = await asyncpg.connect(*args, **options)
        try:
            async with asyncio.timeout(self.timeout):
                taken = await gateway.lock_retention_runner(conn, key=RUNNER_LOCK)
        except BaseException:
            conn.terminate()
            raise
        if not taken:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def _loop(self) -> None:
        # The stop is told by a flag as well as by cancelling: a cancellation that interrupts a
        # statement comes out of it as the connection's loss (a DomainError), caught below.
        while not self._stopping:
            try:
                report = await self.run_once()
                if report is not None:
                    _log.info("retention run: %s", report.model_dump(mode="json"))
            except (DomainError, OSError, asyncpg.PostgresError) as exc:
                if self._stopping:
                    return
                _log.warning("retention run failed, next in %ss: %s", self.interval, exc)
            except Exception:  # a bug: say so, and keep the app's runner alive
                if self._stopping:
                    return
                _log.exception("retention run failed, next in %ss", self.interval)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run every ``interval`` seconds from now on (the first run at once)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name=RUNNER_NAME)

    async def stop(self) -> None:
        """Stop running and give the lock up (closing its connection)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            task.cancel()
            # Bounded: a run interrupted in a statement ends when its connection is dropped.
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            if not done:
                _log.warning("retention runner did not stop within %ss", self.timeout)
            elif not task.cancelled() and task.exception() is not None:
                _log.warning("retention runner ended with %r", task.exception())
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(self.timeout):
                    await gateway.unlock_retention_runner(conn, key=RUNNER_LOCK)
                    await conn.close()
            except (TimeoutError, DomainError, OSError, asyncpg.PostgresError):
                conn.terminate()
