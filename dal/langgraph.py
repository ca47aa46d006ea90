"""``AsyncpgSaver``: a LangGraph checkpointer (``BaseCheckpointSaver``) on Mnemo's gateways.

    async with AsyncpgSaver.from_conn_string(url) as saver:
        await saver.setup()                    # Mnemo's migrations; idempotent
        graph = builder.compile(checkpointer=saver)

or ``AsyncpgSaver(pool)`` on a pool you opened with ``dal.open_pool()``. Channel values are
serialized with LangGraph's serializer (``saver.serde``); None, str, int, float and bool values
stay inline in the checkpoint's JSON, others are stored once per version as blobs. Every read
is one query (a checkpoint with its blobs and pending writes, a page of history, the whole
DeltaChannel ancestor walk); saves made at once share one statement and one commit (see
``_GroupCommit``).

Thread ids are scoped per user: ``config["configurable"]["user_id"]`` (else the saver's own
``user_id``, else none) names the owner of the thread, and two owners' threads ``main`` are two
threads. The owner travels with every call (no lookup): a Mnemo user's id (a UUID) makes the
thread that user's (it shows in their ``GET /v1/threads``); any other value scopes the thread
to that value (its UUIDv5); no user is the nil UUID's scope, reachable only from Python.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid5

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from dal import migrate
from dal.database import Executor, open_pool, transaction, translating
from dal.errors import NotFound, Unavailable
from dal.gateways import checkpoints
from dal.records.checkpoints import Blob, CheckpointPut, CheckpointRow, Write, WritesPut
from dal.settings import Settings

_INT64 = range(-(2**63), 2**63)


def _stays_inline(value: Any) -> bool:
    """Whether a channel value is kept as is in the checkpoint's JSON (else: a blob).

    Only values JSON holds exactly: a str with a NUL character (PostgreSQL refuses it in
    jsonb), an int beyond 64 bits or a non-finite float go to a blob instead.
    """
    if value is None or value is True or value is False:
        return True
    kind = type(value)
    if kind is str:
        return "\x00" not in value
    if kind is int:
        return value in _INT64
    if kind is float:
        return math.isfinite(value)
    return False


# Owners of threads whose user_id is not a UUID are UUIDv5s in this namespace.
_USER_ID_NAMESPACE = UUID("6f1d3c1e-2b7a-5e8c-9a41-0d5b7c3e9f20")


def owner_of(user_id: object) -> UUID:
    """The owner scope of a ``user_id``: the id itself if it is a UUID (a Mnemo user's id,
    as a UUID or its text), else the UUIDv5 of its text; None or "" is no user (the nil UUID).
    """
    if user_id is None or user_id == "":
        return checkpoints.NO_OWNER
    if isinstance(user_id, UUID):
        return user_id
    text = str(user_id)
    try:
        return UUID(text)
    except ValueError:
        return uuid5(_USER_ID_NAMESPACE, text)


Save = tuple[CheckpointPut | WritesPut, "asyncio.Future[None]"]


class _GroupCommit:
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


class AsyncpgSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpoint saver on asyncpg, storing in Mnemo's PostgreSQL schema."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        serde: SerializerProtocol | None = None,
        database_url: str | None = None,
        user_id: object = None,
    ) -> None:
        """``user_id``: the owner of threads whose config names none (and of the calls that
        take no config: ``adelete_thread``, ``acopy_thread``, ``aprune``,
        ``adelete_for_runs``, unless given ``user_id=``)."""
        super().__init__(serde=serde)
        self.pool = pool
        self.database_url = database_url
        self.user_id = user_id
        self.owner = owner_of(user_id)
        self._saves = _GroupCommit(pool)
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        url: str,
        *,
        serde: SerializerProtocol | None = None,
        user_id: object = None,
        **settings: Any,
    ) -> AsyncIterator[AsyncpgSaver]:
        """A saver on its own pool to ``url`` (closed on exit). ``settings`` are Settings
        fields, e.g. ``db_max_connections=20``."""
        pool = await open_pool(Settings(database_url=url, **settings))
        try:
            yield cls(pool, serde=serde, database_url=url, user_id=user_id)
        finally:
            await pool.close()

    async def setup(self) -> None:
        """Apply Mnemo's migrations (idempotent, under yoyo's lock), as LangGraph users expect
        of a saver. Needs the database URL: from ``from_conn_string``, ``database_url=``, or
        DATABASE_URL."""
        url = self.database_url or Settings().database_url
        if not url:
            raise ValueError("setup() needs a database URL: pass database_url= or set DATABASE_URL")
        await asyncio.to_thread(migrate.apply, url)

    # --- scoping ---------------------------------------------------------------------

    def _scope(self, config: RunnableConfig | None) -> tuple[UUID, dict[str, Any]]:
        """The owner of the thread a config names, and what configs this saver returns carry
        of it (the config's ``user_id``, so that a config LangGraph hands back, e.g. a
        snapshot's, still reaches the same thread)."""
        raw = ((config or {}).get("configurable") or {}).get("user_id")
        if raw is None:
            return self.owner, {}
        return owner_of(raw), {"user_id": raw}

    def _owner_arg(self, user_id: object) -> UUID:
        return self.owner if user_id is None else owner_of(user_id)

    # --- writing ---------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = checkpoints.check_key("thread id", configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        owner, scope = self._scope(config)
        inline: dict[str, Any] = {}
        blobs: list[Blob] = []
        dumps = self.serde.dumps_typed
        for channel, value in checkpoint["channel_values"].items():
            if _stays_inline(value):
                inline[channel] = value
            elif channel in new_versions:
                type_, data = dumps(value)
                blobs.append(
                    Blob(
                        channel=channel, version=str(new_versions[channel]), type=type_, value=data
                    )
                )
        stored = {**checkpoint, "channel_values": inline}
        put = CheckpointPut(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=configurable.get("checkpoint_id"),
            checkpoint=stored,
            metadata=get_serializable_checkpoint_metadata(config, metadata),
            blobs=blobs,
            owner=owner,
        )
        # A key that cannot be stored fails here, alone, not in a batch of others' saves.
        checkpoints.check_checkpoint_put(put)
        await self._saves.save(put)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
                **scope,
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        dumps = self.serde.dumps_typed
        rows = []
        for idx, (channel, value) in enumerate(writes):
            type_, data = dumps(value)
            rows.append(
                Write(idx=WRITES_IDX_MAP.get(channel, idx), channel=channel, type=type_, value=data)
            )
        put = WritesPut(
            thread_id=checkpoints.check_key("thread id", configurable["thread_id"]),
            owner=self._scope(config)[0],
            checkpoint_ns=configurable.get("checkpoint_ns", ""),
            checkpoint_id=configurable["checkpoint_id"],
            task_id=task_id,
            task_path=task_path,
            writes=rows,
            replace=all(channel in WRITES_IDX_MAP for channel, _ in writes),
        )
        checkpoints.check_writes_put(put)
        await self._saves.save(put)

    # --- reading ---------------------------------------------------------------------

    def _tuple(self, row: CheckpointRow, scope: dict[str, Any]) -> CheckpointTuple:
        loads = self.serde.loads_typed
        values = dict(row.checkpoint.get("channel_values") or {})
        if row.blob_channels:
            assert row.blob_types is not None and row.blob_values is not None
            for channel, type_, data in zip(
                row.blob_channels, row.blob_types, row.blob_values, strict=True
            ):
                if type_ != "empty" and data is not None:
                    values[channel] = loads((type_, data))
        pending: list[tuple[str, str, Any]] = []
        if row.write_task_ids:
            assert row.write_channels and row.write_types and row.write_values
            for task_id, channel, write_type, data in zip(
                row.write_task_ids,
                row.write_channels,
                row.write_types,
                row.write_values,
                strict=True,
            ):
                pending.append((task_id, channel, loads((write_type or "", data))))
        ids = {"thread_id": row.thread_id, "checkpoint_ns": row.checkpoint_ns, **scope}
        return CheckpointTuple(
            config={"configurable": {**ids, "checkpoint_id": row.checkpoint_id}},
            checkpoint={**row.checkpoint, "channel_values": values},  # type: ignore[typeddict-item]
            metadata=row.metadata,  # type: ignore[arg-type]
            parent_config=(
                {"configurable": {**ids, "checkpoint_id": row.parent_checkpoint_id}}
                if row.parent_checkpoint_id
                else None
            ),
            pending_writes=pending,
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        owner, scope = self._scope(config)
        try:
            row = await checkpoints.get_checkpoint(
                self.pool,
                owner=owner,
                thread_id=configurable["thread_id"],
                checkpoint_ns=configurable.get("checkpoint_ns", ""),
                checkpoint_id=get_checkpoint_id(config),
            )
        except NotFound:
            return None
        return self._tuple(row, scope)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        configurable = (config or {}).get("configurable", {})
        owner, scope = self._scope(config)
        rows = await checkpoints.list_checkpoints(
            self.pool,
            owner=owner,
            thread_id=configurable.get("thread_id"),
            checkpoint_ns=configurable.get("checkpoint_ns"),
            checkpoint_id=configurable.get("checkpoint_id"),
            before=get_checkpoint_id(before) if before else None,
            metadata_filter=filter,
            limit=limit,
        )
        for row in rows:
            yield self._tuple(row, scope)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """What LangGraph replays to rebuild DeltaChannels at a checkpoint: per channel, the
        writes on its parent chain back to the nearest stored value (the seed), and the seed.
        One query for the whole walk; the base class reads one ancestor at a time."""
        if not channels:
            return {}
        configurable = config["configurable"]
        rows = await checkpoints.list_delta_channel_history(
            self.pool,
            owner=self._scope(config)[0],
            thread_id=configurable["thread_id"],
            checkpoint_ns=configurable.get("checkpoint_ns", ""),
            checkpoint_id=get_checkpoint_id(config),
            channels=channels,
        )
        loads = self.serde.loads_typed
        history: dict[str, DeltaChannelHistory] = {ch: {"writes": []} for ch in channels}
        for row in rows:
            entry = history[row.channel]
            if row.task_id is None:
                entry["seed"] = (
                    row.inline_value if row.value is None else loads((row.type or "", row.value))
                )
            else:
                value = loads((row.type or "", row.value or b""))
                entry["writes"].append((row.task_id, row.channel, value))
        return history

    # --- deleting, copying, pruning --------------------------------------------------

    async def adelete_thread(self, thread_id: str, *, user_id: object = None) -> None:
        """Delete a thread of ``user_id`` (default: the saver's ``user_id``)."""
        await checkpoints.delete_thread(
            self.pool, owner=self._owner_arg(user_id), thread_id=str(thread_id)
        )

    async def adelete_for_runs(self, run_ids: Sequence[str], *, user_id: object = None) -> None:
        """Delete what these runs wrote in the threads of ``user_id`` (default: the saver's)."""
        await checkpoints.delete_checkpoints_for_runs(
            self.pool, owner=self._owner_arg(user_id), run_ids=[str(r) for r in run_ids]
        )

    async def acopy_thread(
        self, source_thread_id: str, target_thread_id: str, *, user_id: object = None
    ) -> None:
        """Copy a thread of ``user_id`` (default: the saver's) to another of theirs."""
        await checkpoints.copy_thread(
            self.pool,
            owner=self._owner_arg(user_id),
            source_thread_id=str(source_thread_id),
            target_thread_id=str(target_thread_id),
        )

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", user_id: object = None
    ) -> None:
        """Prune threads of ``user_id`` (default: the saver's)."""
        if strategy not in checkpoints.PRUNE_STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")
        ids = [str(t) for t in thread_ids]
        if not ids:
            return
        owner = self._owner_arg(user_id)
        async with transaction(self.pool) as conn:
            # Saves to these threads (an HTTP state write reads its parent) wait for the prune.
            await checkpoints.list_threads_locked_for_prune(conn, owner=owner, thread_ids=ids)
            if strategy == "delete":
                await checkpoints.delete_checkpoints_of_threads(conn, owner=owner, thread_ids=ids)
                return
            # A DeltaChannel is rebuilt from the chain of ancestors back to its last
            # snapshot; keeping only the latest checkpoint would silently empty it.
            delta = await checkpoints.find_delta_channel_threads(conn, owner=owner, thread_ids=ids)
            if delta:
                raise NotImplementedError(
                    "keep_latest cannot prune threads that use a DeltaChannel: " + ", ".join(delta)
                )
            await checkpoints.delete_checkpoints_except_latest(conn, owner=owner, thread_ids=ids)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions sort as text; the random part keeps two branches of a forked thread from
        writing different values under one version (blobs are keyed by version)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # --- the synchronous interface, for code running in another thread ---------------

    def _run(self, coroutine: Any) -> Any:
        if self.loop is None:
            coroutine.close()
            raise asyncio.InvalidStateError(
                "create the AsyncpgSaver inside a running event loop to use its sync methods"
            )
        try:
            if asyncio.get_running_loop() is self.loop:
                coroutine.close()
                raise asyncio.InvalidStateError(
                    "Synchronous calls to AsyncpgSaver are only allowed from another thread "
                    "than its event loop's; there, use the async methods (aget_tuple, ainvoke...)."
                )
        except RuntimeError:
            pass
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = self._run(self.aget_tuple(config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        yield from self._run(collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        result: RunnableConfig = self._run(self.aput(config, checkpoint, metadata, new_versions))
        return result

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self.aput_writes(config, writes, task_id, task_path))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        result: Mapping[str, DeltaChannelHistory] = self._run(
            self.aget_delta_channel_history(config=config, channels=channels)
        )
        return result

    def delete_thread(self, thread_id: str, *, user_id: object = None) -> None:
        self._run(self.adelete_thread(thread_id, user_id=user_id))

    def delete_for_runs(self, run_ids: Sequence[str], *, user_id: object = None) -> None:
        self._run(self.adelete_for_runs(run_ids, user_id=user_id))

    def copy_thread(
        self, source_thread_id: str, target_thread_id: str, *, user_id: object = None
    ) -> None:
        self._run(self.acopy_thread(source_thread_id, target_thread_id, user_id=user_id))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", user_id: object = None
    ) -> None:
        self._run(self.aprune(thread_ids, strategy=strategy, user_id=user_id))
