"""Workers (README "Tasks", "Workers"): plain Python that runs tasks, woken by LISTEN/NOTIFY.

    async for job in mnemo_worker(pool, kinds=["research"]):
        async with job:  # heartbeats while held; completes on exit, fails on an exception
            await job.complete(await research(job.task.input))

or ``await Worker(pool, handler, kinds=["research"], concurrency=8).run()``, which runs
``await handler(job)`` for each task, at most ``concurrency`` at once, completing the task
with what the handler returns and failing it with what it raises. Both claim through
``dal.gateways.tasks`` (``claim_tasks``: priority with aging, ``FOR UPDATE SKIP LOCKED``).

Waking up. Each worker keeps one connection of its own, outside the pool, that LISTENs on
``mnemo_tasks``: migration 20261207_05 NOTIFYs it with the task's kind whenever a task becomes
pending (created, retried, its lease expired, released). An idle worker claims as soon as a
task of one of its kinds arrives. A claim that finds nothing (a retry's backoff is not over
yet) asks the database how long until something of its kinds may be claimable
(``get_task_wait``: a backoff ending, a lease expiring) and sleeps that long, or
``poll_seconds`` (the fallback), whichever is sooner. The listener reconnects by itself (0.2 s,
doubling to 5 s) after the database restarts or drops it, and the worker claims once it is
back (it may have missed notifications); meanwhile the poll keeps the worker going.

Every database call is bounded by ``timeout`` seconds. A claim that fails because the
database is unreachable is retried after a pause (0.2 s doubling to ``poll_seconds``).

Holding a task. A claimed task's lease (``lease_seconds``) is extended every third of it
while the job is held, until ``complete``, ``fail`` or ``release`` reaches the database (or
``abandon``). A job whose lease was lost (it expired, or the user cancelled the task:
``job.lost``) can report nothing, and ``Worker`` cancels its handler. ``async with job`` that
cannot report (the database away past ``timeout``) abandons the job: its lease returns it.

Completing. ``job.complete`` made while another completion of the same worker is being
committed joins the next batch: one ``complete_tasks`` statement (one commit) as soon as the
one under way returns (``_Queue.complete``). Handlers finishing together (``Worker`` with
``concurrency`` > 1, or the jobs of an iterator's batch handled concurrently) share commits;
each ``complete`` still returns only once its own completion is committed.

Stopping. Cancelling a handler inside ``async with job`` (``Worker.stop`` past its grace, a
cancelled ``Worker.run``, Ctrl-C of ``mnemo worker``) *releases* its task: back to pending at
once, its attempt undone (a stopping worker is not the task's failure). Closing the iterator
releases the tasks it claimed but did not hand out yet, and stops the heartbeats of those it
handed out. A worker that dies (killed, its host lost) leaves its tasks to their lease: the
next claim after it expires puts them back in the queue, with the attempt counted (failed for
good if it was the last). Delivery is at least once: a handler may run again if its worker
dies before its completion commits, never at the same time as another holding the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

import asyncpg

from dal.errors import DomainError, LeaseLost, Timeout, Unavailable
from dal.gateways import meta
from dal.gateways import tasks as gateway
from dal.records.tasks import Task

_log = logging.getLogger(__name__)

# The channel migration 20261207_05 notifies, with the task's kind, when a task becomes pending.
CHANNEL = "mnemo_tasks"
# The listener connections' application_name (find them in pg_stat_activity).
LISTENER_NAME = "mnemo-task-listener"
# Reconnecting the listener, and retrying after the database failed a claim: the first wait,
# doubled up to the last (a claim's pause at most poll_seconds).
RETRY_FIRST, RETRY_MOST = 0.2, 5.0
# After a claim found nothing although a task is due (another worker's claim held it locked),
# the first wait before claiming again, doubled while that lasts, up to poll_seconds.
BUSY_FIRST = 0.05
# The most completions one statement commits (those waiting beyond it go in the next one).
COMPLETE_BATCH = 100
# Errors that mean "the database is away or slow", never a bug: the worker waits and retries.
TRANSIENT = (Unavailable, Timeout, TimeoutError, OSError)

T = TypeVar("T")
# What Worker runs for each task: its return value is the task's result (any JSON value).
Handler = Callable[["Job"], Awaitable[Any]]


def default_worker_id() -> str:
    """A name no other worker has: host, process, and a random part (for two in one process)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


def error_of(exc: BaseException) -> dict[str, Any]:
    """The JSON a failed attempt records: the exception's (public) type and its message."""
    kind = next(c for c in type(exc).__mro__ if not c.__name__.startswith("_"))
    return {"type": kind.__qualname__, "message": str(exc)[:4000]}


class Job:
    """A task this worker claimed (``task``: as claimed, then as last heartbeated), held until
    ``complete``, ``fail`` or ``release``; its lease is extended automatically meanwhile.

    ``async with job:`` completes it (with None) when the block ends without having reported,
    fails it (retried with backoff while attempts are left) when the block raises, swallowing
    the exception, and releases it when the block is cancelled (the cancellation goes on)."""

    def __init__(self, queue: _Queue, task: Task) -> None:
        self.task = task
        self._queue = queue
        self._done = False
        self._lost = False
        self._beating = False
        # A completion of it is being committed: the verdict on its lease is that statement's.
        self._completing = False
        self.on_lost: Callable[[], object] | None = None
        self._beats: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._heartbeats(), name=f"mnemo-heartbeat-{task.id}"
        )

    @property
    def worker_id(self) -> str:
        return self._queue.worker_id

    @property
    def db(self) -> Any:
        """The pool the worker runs on (to write what the task produces, e.g. its events)."""
        return self._queue.pool

    @property
    def held(self) -> bool:
        """Whether the job may still report: not finished, its lease not known lost."""
        return not self._done and not self._lost

    @property
    def lost(self) -> bool:
        """Whether the lease was lost (expired, or the task cancelled): the task is not ours."""
        return self._lost

    async def complete(self, result: Any = None) -> Task:
        """The task succeeded with ``result`` (any JSON value): returns once that is committed.
        LeaseLost if it is not held. Completions of the worker's jobs made while another is
        being committed are committed together, next (``_Queue.complete``)."""
        if not self.held:
            raise LeaseLost(f"task {self.task.id} is no longer held by {self.worker_id!r}")
        return await self._queue.complete(self, result)

    async def fail(self, error: Any, *, retry: bool = True) -> Task:
        """The attempt failed with ``error`` (any JSON value): retried after the worker's
        backoff while attempts are left and ``retry``, else failed for good."""
        queue = self._queue
        return await self._finish(
            gateway.fail_task(
                self.db,
                task_id=self.task.id,
                worker=self.worker_id,
                error=error,
                retry=retry,
                backoff_base_seconds=queue.backoff_base_seconds,
                backoff_cap_seconds=queue.backoff_cap_seconds,
            )
        )

    async def release(self) -> Task:
        """Give the task back to the queue untouched: pending now, its attempt undone."""
        return await self._finish(
            gateway.release_task(self.db, task_id=self.task.id, worker=self.worker_id)
        )

    async def heartbeat(self) -> Task:
        """Extend the lease now (the job does it every third of the lease by itself)."""
        try:
            task = await self._queue.timed(
                gateway.heartbeat_task(
                    self.db,
                    task_id=self.task.id,
                    worker=self.worker_id,
                    lease_seconds=self._queue.lease_seconds,
                )
            )
        except LeaseLost:
            # (a beat overtaken by a report loses nothing: the report says how it went)
            if not self._done and not self._completing:
                self._lose()
            raise
        if not self._done:
            self.task = task
        return task

    async def _finish(self, call: Coroutine[Any, Any, Task]) -> Task:
        """Report: the job ends once the database has the report, or says the lease is lost.
        Any other error leaves it held (and heartbeated): report again, or ``abandon``."""
        if not self.held:
            call.close()
            raise LeaseLost(f"task {self.task.id} is no longer held by {self.worker_id!r}")
        try:
            task = await self._queue.timed(call)
        except LeaseLost:
            self._reported(None)
            raise
        self._reported(task)
        return task

    def _reported(self, task: Task | None) -> None:
        """The database has the report (``task``: as it is now), or said the lease is lost."""
        if task is None:
            self._lost = True
        else:
            self._done = True
            self.task = task
        self.abandon()

    def abandon(self) -> None:
        """Stop holding the job without a report (its heartbeats stop): the lease returns the
        task to the queue when it expires."""
        beats, self._beats = self._beats, None
        if beats is not None and not self._beating:
            beats.cancel()  # asleep between beats (a beat under way ends by itself)
        self._queue.forget(self)

    def _lose(self) -> None:
        if not self._lost:
            self._lost = True
            self.abandon()
            if self.on_lost is not None and not self._done:
                self.on_lost()

    async def _heartbeats(self) -> None:
        every = self._queue.lease_seconds / 3
        while self._beats is not None:
            await asyncio.sleep(every)
            if self._beats is None:
                return
            self._beating = True
            try:
                await self.heartbeat()
            except LeaseLost:
                if self._lost:
                    _log.warning("task %s: lease lost (expired or cancelled)", self.task.id)
                return
            except TRANSIENT as exc:
                _log.warning("task %s: heartbeat failed, retrying: %r", self.task.id, exc)
            finally:
                self._beating = False

    async def __aenter__(self) -> Job:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self._done:
            return False
        if self._lost:  # the task is someone else's now: nothing to report
            if isinstance(exc, Exception):
                _log.warning("task %s failed after its lease was lost: %r", self.task.id, exc)
                return True
            return False
        try:
            if exc is None:
                await self.complete(None)
            elif isinstance(exc, Exception):
                _log.warning("task %s failed: %r", self.task.id, exc)
                await self.fail(error_of(exc))
                return True
            else:  # cancelled (or the process is exiting): give the task back at once
                await self.release()
        except (LeaseLost, *TRANSIENT) as report_exc:
            _log.warning(
                "task %s: could not report (left to its lease): %r", self.task.id, report_exc
            )
            self.abandon()
            return isinstance(exc, Exception)
        return False


class _Completion:
    """A job's completion waiting for its batch (``sent`` once it is in a statement)."""

    __slots__ = ("job", "outcome", "result", "sent")

    def __init__(self, job: Job, result: Any, outcome: asyncio.Future[Task]) -> None:
        self.job = job
        self.result = result
        self.outcome = outcome
        self.sent = False

    def settle(self, outcome: Task | BaseException) -> None:
        """The statement's answer: the job ends (done, or lost on LeaseLost) before its caller
        hears, so a caller that gave up meanwhile leaves it consistent."""
        self.job._completing = False
        if isinstance(outcome, Task):
            self.job._reported(outcome)
        elif isinstance(outcome, LeaseLost):
            self.job._reported(None)
        if self.outcome.done():
            return
        if isinstance(outcome, Task):
            self.outcome.set_result(outcome)
        else:
            self.outcome.set_exception(outcome)


class _Queue:
    """One worker's side of the queue: its claims, its listener, its waits."""

    def __init__(
        self,
        pool: Any,
        *,
        kinds: Sequence[str],
        worker_id: str | None,
        lease_seconds: float,
        poll_seconds: float,
        timeout: float,
        backoff_base_seconds: float,
        backoff_cap_seconds: float,
        dsn: str | None,
    ) -> None:
        if isinstance(kinds, str) or not kinds:
            raise ValueError("kinds must be a non-empty list of task kinds")
        if not poll_seconds > 0 or not timeout > 0:
            raise ValueError("poll_seconds and timeout must be positive")
        if not gateway.MIN_LEASE_SECONDS <= lease_seconds <= gateway.MAX_LEASE_SECONDS:
            raise ValueError(
                f"lease_seconds must be between {gateway.MIN_LEASE_SECONDS:g}"
                f" and {gateway.MAX_LEASE_SECONDS:g}"
            )
        if dsn is None and not hasattr(pool, "_connect_args"):
            raise ValueError("the listener needs a dsn: pool is not an asyncpg pool")
        self.pool = pool
        self.kinds = list(dict.fromkeys(kinds))
        self._kind_set = frozenset(self.kinds)
        self.worker_id = worker_id or default_worker_id()
        self.lease_seconds = float(lease_seconds)
        self.poll_seconds = float(poll_seconds)
        self.timeout = float(timeout)
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self._dsn = dsn
        # Set by a notification of one of our kinds, the listener's loss, or the owner
        # (a handler finished, a stop): whoever waits in idle() looks again.
        self.wake = asyncio.Event()
        # Whether it waits for work now, having found none (and able to take some).
        self.waiting = False
        self._listener: asyncpg.Connection[Any] | None = None
        self._retry_at = 0.0
        self._retry = RETRY_FIRST
        self._checked_at = 0.0
        self._busy_wait = BUSY_FIRST
        self._pause = RETRY_FIRST
        # Held jobs: their heartbeats stop when the queue closes.
        self._jobs: set[Job] = set()
        # Completions waiting for the next batch, and the task that commits them.
        self._completions: list[_Completion] = []
        self._committer: asyncio.Task[None] | None = None
        # Completion statements sent (what the tests count batches by).
        self.completion_statements = 0

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def timed(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout):
            return await call

    def forget(self, job: Job) -> None:
        self._jobs.discard(job)

    async def complete(self, job: Job, result: Any) -> Task:
        """Complete ``job``'s task with ``result``: at once when no completion of this worker
        is being committed, else with every other completion that arrives meanwhile, as one
        statement (one commit, at most COMPLETE_BATCH tasks) as soon as the one under way
        returns. Returns once the task's completion is committed; LeaseLost if the batch left
        it out (the worker no longer holds it). The job ends as with any report.

        Bounded: a completion waits at most ``timeout`` for its statement to be sent (then it
        is withdrawn: TimeoutError, the job still held), and its statement is bounded by
        ``timeout`` too. A caller cancelled before its statement was sent withdraws it; once
        sent, the caller waits for its outcome (the job then done or lost, never in between)
        and the cancellation goes on. Other callers' completions are not affected."""
        entry = _Completion(job, result, asyncio.get_running_loop().create_future())
        self._completions.append(entry)
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_completions(), name=f"mnemo-completions-{self.worker_id}"
            )
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(entry.outcome)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if not entry.sent:
                self._completions.remove(entry)
                raise
            # Its statement is under way (bounded): its outcome, whatever happens meanwhile.
            while not entry.outcome.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(entry.outcome)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return entry.outcome.result()

    async def _commit_completions(self) -> None:
        """The committer: sends the completions waiting, a batch at a time, until none are."""
        batch: dict[Any, _Completion] = {}
        try:
            # One turn of the event loop: completions made in the same moment (handlers that
            # finished together) join the first statement.
            await asyncio.sleep(0)
            while self._completions:
                batch = {}
                later: list[_Completion] = []
                for entry in self._completions:
                    # (a task completed twice at once: the second in the next batch, which
                    # finds it no longer held, as two statements one after the other would)
                    if len(batch) < COMPLETE_BATCH and entry.job.task.id not in batch:
                        entry.sent = entry.job._completing = True
                        batch[entry.job.task.id] = entry
                    else:
                        later.append(entry)
                self._completions = later
                await self._send_completions(list(batch.values()))
        finally:
            # (only if cancelled, the loop closing, or a bug: nobody waits forever)
            self._committer = None
            for entry in [*batch.values(), *self._completions]:
                entry.sent = True
                if not entry.outcome.done():
                    entry.settle(
                        Unavailable("the worker stopped: the completion may not be committed")
                    )
            self._completions = []

    async def _send_completions(self, batch: list[_Completion]) -> None:
        """One statement for ``batch``; if the database refuses it (e.g. a result that is no
        JSON value), each of its completions alone, so an error reaches only its own caller."""
        self.completion_statements += 1
        try:
            if len(batch) == 1:
                [entry] = batch
                done = [
                    await self.timed(
                        gateway.complete_task(
                            self.pool,
                            task_id=entry.job.task.id,
                            worker=self.worker_id,
                            result=entry.result,
                        )
                    )
                ]
            else:
                done = await self.timed(
                    gateway.complete_tasks(
                        self.pool,
                        worker=self.worker_id,
                        results={entry.job.task.id: entry.result for entry in batch},
                    )
                )
        except LeaseLost as exc:  # (complete_task: the one task is no longer held)
            batch[0].settle(exc)
            return
        except DomainError as exc:
            if len(batch) == 1:
                batch[0].settle(exc)
                return
            for entry in batch:
                await self._send_completions([entry])
            return
        except BaseException as exc:  # the database away or slow: each job stays held
            for entry in batch:
                entry.settle(
                    exc if isinstance(exc, Exception) else Unavailable("the worker stopped")
                )
            if not isinstance(exc, Exception):
                raise
            return
        by_id = {task.id: task for task in done}
        for entry in batch:
            task = by_id.get(entry.job.task.id)
            entry.settle(
                task
                if task is not None
                else LeaseLost(f"worker {self.worker_id!r} does not hold task {entry.job.task.id}")
            )

    async def claim(self, limit: int) -> list[Job]:
        """Claim up to ``limit`` tasks; the wake-up flag is cleared first, so a notification
        arriving meanwhile makes the next idle() return at once."""
        self.wake.clear()
        claimed = await self.timed(
            gateway.claim_tasks(
                self.pool,
                kinds=self.kinds,
                worker=self.worker_id,
                lease_seconds=self.lease_seconds,
                limit=limit,
            )
        )
        self._pause = RETRY_FIRST
        if claimed:
            self._busy_wait = BUSY_FIRST
        jobs = [Job(self, task) for task in claimed]
        self._jobs.update(jobs)
        return jobs

    async def pause(self, exc: BaseException) -> None:
        """After a claim the database failed: wait a little longer each time (or until woken)."""
        _log.warning(
            "worker %s: claim failed, retrying in %.1f s: %r", self.worker_id, self._pause, exc
        )
        await self._sleep(self._pause)
        self._pause = min(self._pause * 2, self.poll_seconds)

    async def idle(self, *, busy: bool = False) -> None:
        """Wait until woken, until a task of our kinds may be claimable, or ``poll_seconds``.
        ``busy``: the caller cannot take work now, only wake-ups matter."""
        await self._keep_listening()
        timeout = self.poll_seconds
        if not busy and not self.wake.is_set():
            try:
                wait = await self.timed(gateway.get_task_wait(self.pool, kinds=self.kinds))
            except TRANSIENT:
                wait = None  # the next claim says what is wrong
            if wait is not None and wait <= 0:
                timeout = min(timeout, self._busy_wait)
                self._busy_wait = min(self._busy_wait * 2, self.poll_seconds)
            elif wait is not None:
                timeout = min(timeout, wait)
        if self._listener is None:
            loop = asyncio.get_running_loop()
            timeout = min(timeout, max(0.0, self._retry_at - loop.time()))
        self.waiting = not busy
        try:
            await self._sleep(timeout)
        finally:
            self.waiting = False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()

    async def _keep_listening(self) -> None:
        """(Re)connect the listener when it is down and its retry is due; prove it alive when
        it has been quiet for ``poll_seconds``."""
        now = asyncio.get_running_loop().time()
        conn = self._listener
        if conn is not None and conn.is_closed():
            self._drop_listener("its connection was lost")
            conn = None
        if conn is None:
            if now >= self._retry_at:
                await self._listen()
            return
        if now - self._checked_at >= self.poll_seconds:
            try:
                await self.timed(meta.ping(conn))
            except (*TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._drop_listener(repr(exc))
                self._retry_at = now
                self.wake.set()
            else:
                self._checked_at = now

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        conn: asyncpg.Connection[Any] | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connect()
                await conn.add_listener(CHANNEL, self._heard)
        except BaseException as exc:
            if conn is not None:
                conn.terminate()
            if not isinstance(exc, (*TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError)):
                raise  # (cancelled, or a bug)
            if self._retry == RETRY_FIRST:
                _log.warning(
                    "worker %s: no wake-ups until its listener connects (polling every %g s): %r",
                    self.worker_id,
                    self.poll_seconds,
                    exc,
                )
            self._retry_at = loop.time() + self._retry
            self._retry = min(self._retry * 2, RETRY_MOST)
            return
        conn.add_termination_listener(self._lost)
        self._listener = conn
        self._retry = RETRY_FIRST
        self._checked_at = loop.time()
        # Tasks may have arrived while nobody listened.
        self.wake.set()

    async def _connect(self) -> asyncpg.Connection[Any]:
        """A connection outside the pool: with ``dsn`` when given, else with the pool's own
        connection arguments (asyncpg keeps them on the pool), named LISTENER_NAME."""
        if self._dsn is not None:
            args: Sequence[Any] = (self._dsn,)
            options: dict[str, Any] = {}
        else:
            args = tuple(self.pool._connect_args)
            options = dict(self.pool._connect_kwargs)
        server_settings = {**(options.get("server_settings") or {})}
        server_settings["application_name"] = LISTENER_NAME
        options.update(server_settings=server_settings, timeout=self.timeout)
        conn: asyncpg.Connection[Any] = await asyncpg.connect(*args, **options)
        return conn

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        if payload in self._kind_set:
            self.wake.set()

    def _lost(self, _conn: Any) -> None:
        self.wake.set()  # idle() reconnects

    def _drop_listener(self, why: str) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            _log.warning("worker %s: listener lost, reconnecting: %s", self.worker_id, why)
            conn.terminate()

    async def close(self, *, release: Sequence[Job] = ()) -> None:
        """Release ``release`` (claimed, never handed out), stop every heartbeat, hang up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                for job in release:
                    with contextlib.suppress(LeaseLost, *TRANSIENT):
                        await job.release()
        committer = self._committer
        if committer is not None:  # completions under way (each bounded by timeout)
            await asyncio.wait({committer}, timeout=self.timeout * 2)
        for job in list(self._jobs):
            job.abandon()
        self._jobs.clear()
        conn, self._listener = self._listener, None
        if conn is not None:
            conn.terminate()


async def mnemo_worker(
    pool: Any,
    *,
    kinds: Sequence[str],
    worker_id: str | None = None,
    lease_seconds: float = 60.0,
    batch: int = 1,
    poll_seconds: float = 5.0,
    timeout: float = 10.0,
    backoff_base_seconds: float = gateway.BACKOFF_BASE_SECONDS,
    backoff_cap_seconds: float = gateway.BACKOFF_CAP_SECONDS,
    dsn: str | None = None,
) -> AsyncIterator[Job]:
    """The tasks of ``kinds``, one job at a time, forever: claimed ``batch`` at a time (each
    with a lease of ``lease_seconds``, heartbeated while held), woken by LISTEN/NOTIFY, polled
    every ``poll_seconds`` as a fallback; every database call bounded by ``timeout``. Failed
    attempts are retried after ``backoff_base_seconds * 2^(attempts - 1)`` (at most
    ``backoff_cap_seconds``). The listener connects with ``dsn``, else with the pool's own
    connection arguments. Close it (``contextlib.aclosing``, or cancel its task) to stop:
    claimed tasks not handed out yet are released."""
    if not 1 <= batch <= gateway.MAX_CLAIM:
        raise ValueError(f"batch must be between 1 and {gateway.MAX_CLAIM}")
    queue = _Queue(
        pool,
        kinds=kinds,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        timeout=timeout,
        backoff_base_seconds=backoff_base_seconds,
        backoff_cap_seconds=backoff_cap_seconds,
        dsn=dsn,
    )
    claimed: deque[Job] = deque()
    try:
        while True:
            try:
                claimed.extend(await queue.claim(batch))
            except TRANSIENT as exc:
                await queue.pause(exc)
                continue
            if not claimed:
                await queue.idle()
                continue
            while claimed:
                yield claimed.popleft()
    finally:
        await queue.close(release=list(claimed))


class Worker:
    """Runs ``handler`` for each task of ``kinds``, at most ``concurrency`` at once: the task
    succeeds with what the handler returns (any JSON value), fails with what it raises
    (``error_of``: retried after a backoff while attempts are left) unless the handler
    reported itself (``job.complete`` / ``job.fail``). A handler that returned frees its
    slot while its task's report commits (the next claim overlaps it; at most ``concurrency``
    such tasks more are held); reports made together commit together (``_Queue.complete``).
    A handler whose lease is lost (the task was cancelled, or the lease expired) is
    cancelled. The other arguments are ``mnemo_worker``'s."""

    def __init__(
        self,
        pool: Any,
        handler: Handler,
        *,
        kinds: Sequence[str],
        worker_id: str | None = None,
        concurrency: int = 1,
        lease_seconds: float = 60.0,
        poll_seconds: float = 5.0,
        timeout: float = 10.0,
        backoff_base_seconds: float = gateway.BACKOFF_BASE_SECONDS,
        backoff_cap_seconds: float = gateway.BACKOFF_CAP_SECONDS,
        dsn: str | None = None,
    ) -> None:
        if not 1 <= concurrency <= gateway.MAX_CLAIM:
            raise ValueError(f"concurrency must be between 1 and {gateway.MAX_CLAIM}")
        self.handler = handler
        self.concurrency = concurrency
        self._queue = _Queue(
            pool,
            kinds=kinds,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            poll_seconds=poll_seconds,
            timeout=timeout,
            backoff_base_seconds=backoff_base_seconds,
            backoff_cap_seconds=backoff_cap_seconds,
            dsn=dsn,
        )
        self._stopping = False
        self._grace = 0.0
        self._running: set[asyncio.Task[None]] = set()
        # Those of them whose handler has not returned yet (the others report their task).
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def worker_id(self) -> str:
        return self._queue.worker_id

    @property
    def listening(self) -> bool:
        """Whether its listener is connected now (else only the poll wakes it)."""
        return self._queue.listening

    @property
    def kinds(self) -> list[str]:
        return list(self._queue.kinds)

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called."""
        return self._stopping

    @property
    def waiting(self) -> bool:
        """Whether it waits for work now: its last claim found none, a slot is free."""
        return self._queue.waiting

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop claiming; ``run`` returns once the handlers running have finished, or after
        ``grace_seconds``, when those left are cancelled and their tasks released."""
        self._stopping = True
        self._grace = grace_seconds
        self._queue.wake.set()

    async def run(self) -> None:
        """Run until ``stop()`` (see there) or until cancelled: then the handlers running are
        cancelled at once and their tasks released."""
        queue = self._queue
        running = self._running
        try:
            while not self._stopping:
                # (Cleared before counting: a handler that finishes from here on wakes idle.)
                queue.wake.clear()
                # At most ``concurrency`` handlers at once; a task whose handler returned
                # frees its slot while its report commits (the next claim overlaps it), with
                # at most ``concurrency`` such tasks more held.
                free = min(
                    self.concurrency - len(self._handling), 2 * self.concurrency - len(running)
                )
                if free <= 0:
                    await queue.idle(busy=True)
                    continue
                try:
                    jobs = await queue.claim(free)
                except TRANSIENT as exc:
                    await queue.pause(exc)
                    continue
                for job in jobs:
                    task = asyncio.create_task(self._handle(job), name=f"mnemo-task-{job.task.id}")
                    running.add(task)
                    self._handling.add(task)
                    task.add_done_callback(self._finished)
                if not jobs and not self._stopping:
                    await queue.idle()
            if running:
                _done, late = await asyncio.wait(set(running), timeout=self._grace)
                for task in late:
                    task.cancel()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            await queue.close()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._handling.discard(task)
        self._queue.wake.set()
        if not task.cancelled() and task.exception() is not None:
            _log.error("worker %s: %r", self.worker_id, task.exception())

    def _returned(self, task: asyncio.Task[None]) -> None:
        """The handler of ``task`` returned (or raised): its slot is free for the next claim."""
        if task in self._handling:
            self._handling.discard(task)
            self._queue.wake.set()

    async def _handle(self, job: Job) -> None:
        me = asyncio.current_task()
        assert me is not None
        job.on_lost = me.cancel
        try:
            async with job:
                try:
                    result = await self.handler(job)
                finally:
                    self._returned(me)
                if job.held:
                    await job.complete(result)
                    _log.info("task %s (%s) succeeded", job.task.id, job.task.kind)
        except asyncio.CancelledError:
            if job.lost and not self._stopping:
                return  # cancelled for its lost lease: the task is someone else's now
            raise
        except (DomainError, *TRANSIENT) as exc:  # a report the database refused
            _log.warning("task %s: %r", job.task.id, exc)
