"""The saver's group commit: saves made at once share one statement and one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from dal.database import Executor, translating
from dal.errors import Unavailable
from dal.gateways import checkpoints
from dal.records.checkpoints import CheckpointPut, WritesPut

Save = tuple[CheckpointPut | WritesPut, "asyncio.Future[None]"]


class GroupCommit:
    """Saves that arrive while others are being committed are committed together, next.

    LangGraph saves a step's checkpoint and its tasks' writes in the background, close
    together, each call waiting for its own. Committing each alone costs a round trip and a
    commit (a WAL flush to disk) apiece. Here a committer task takes every save waiting, as one
    statement in one transaction, then the next ones: each call still returns only once its
    rows are committed, and the rows are those of running the calls one by one, in order. A
    3-node invocation commits 5 or 6 times instead of 9, and concurrent graphs share commits.
    If a batch fails, each of its saves is retried alone, so an error reaches only the call
    that caused it.

    A second committer starts when a save arrives while the first is busy committing, so a
    checkpoint (the next step's saves wait for it) never queues behind a batch of writes; a
    committer holds one pooled connection while saves are waiting, and no longer.
    """

    COMMITTERS = 2

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self._waiting: list[Save] = []
        self._running = 0  # committer tasks
        self._idle = 0  # committers between batches (about to take the waiting saves)
        self._tasks: set[asyncio.Task[None]] = set()

    async def save(self, item: CheckpointPut | WritesPut) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((item, done))
        if self._idle == 0 and self._running < self.COMMITTERS:
            self._start()
        await done

    def _start(self) -> None:
        self._running += 1
        self._idle += 1
        task = asyncio.get_running_loop().create_task(self._commit_waiting())
        self._tasks.add(task)  # a reference, so the task is not collected mid-way
        task.add_done_callback(self._tasks.discard)

    async def _commit_waiting(self) -> None:
        idle, running = True, True  # what this task counts for in _idle and _running

        def leave() -> None:
            # No await between the last look at _waiting and this: a save arriving later sees
            # this committer gone and starts another.
            nonlocal idle, running
            self._idle -= idle
            self._running -= running
            idle = running = False

        try:
            with translating():
                async with self._pool.acquire() as conn:
                    # One more turn of the event loop: saves submitted in the same moment (a
                    # task's writes and the step's checkpoint) join the first batch.
                    await asyncio.sleep(0)
                    while self._waiting:
                        batch, self._waiting = self._waiting, []
                        self._idle -= 1
                        idle = False
                        healthy = await self._commit(conn, batch)
                        if not healthy:
                            # Its connection failed: the batch, once more on another one, then
                            # this committer ends (the pool replaces the connection).
                            await self._commit_on_new_connection(batch)
                        self._idle += 1
                        idle = True
                        if not healthy:
                            break
                    leave()
        except BaseException as exc:  # no connection to be had, or cancelled
            leave()
            if self._running == 0:  # nobody else will take them
                batch, self._waiting = self._waiting, []
                _settle(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            leave()
            if self._waiting and self._running == 0:
                self._start()  # saves that came after a failed connection

    async def _commit(self, conn: Executor, batch: Sequence[Save]) -> bool:
        """Commit a batch, or each of its saves alone if it fails. False, with the saves not
        committed yet left unsettled, if the connection failed."""
        try:
            await checkpoints.upsert_checkpoint_batch(
                conn,
                checkpoints=[item for item, _ in batch if isinstance(item, CheckpointPut)],
                writes=[item for item, _ in batch if isinstance(item, WritesPut)],
            )
        except Exception as exc:
            if isinstance(exc, Unavailable) or not _usable(conn):
                return False
            if len(batch) == 1:
                _settle(batch, exc)
                return True
            for one in batch:
                if not await self._commit(conn, [one]):
                    return False
            return True
        except BaseException as exc:  # cancelled (the loop is closing): nobody waits forever
            _settle(batch, exc)
            raise
        _settle(batch, None)
        return True

    async def _commit_on_new_connection(self, batch: Sequence[Save]) -> None:
        """The saves of a batch whose connection failed, on another connection. They may or
        may not have been committed; committing them again changes nothing (the statement
        only upserts what it is given)."""
        unsettled = [save for save in batch if not save[1].done()]
        try:
            with translating():
                async with self._pool.acquire() as conn:
                    if await self._commit(conn, unsettled):
                        return
        except BaseException as exc:  # no connection to be had, or cancelled
            _settle(unsettled, exc)
            if not isinstance(exc, Exception):
                raise
            return
        _settle(unsettled, Unavailable("the database connection was lost"))


def _usable(conn: Executor) -> bool:
    """Whether a pooled connection still works (asyncpg detaches it once it is lost)."""
    try:
        return not conn.is_closed()  # type: ignore[attr-defined]
    except asyncpg.InterfaceError:
        return False


def _settle(
    batch: Sequence[tuple[object, asyncio.Future[None]]], error: BaseException | None
) -> None:
    for _, done in batch:
        if done.done():  # its caller was cancelled
            continue
        if error is None:
            done.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            done.cancel()
        else:
            done.set_exception(error)
