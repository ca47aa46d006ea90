"""``AsyncpgSaver``: a LangGraph checkpointer (``BaseCheckpointSaver``) on Mnemo's gateways.

    async with AsyncpgSaver.from_conn_string(url) as saver:
        await saver.setup()                    # Mnemo's migrations; idempotent
        graph = builder.compile(checkpointer=saver)

or ``AsyncpgSaver(pool)`` on a pool you opened with ``dal.open_pool()``. Channel values are
serialized with LangGraph's serializer (``saver.serde``); None, str, int, float and bool values
stay inline in the checkpoint's JSON, others are stored once per version as blobs (the rules
are the codec's, ``dal.langgraph.codec``). Every read is one query (a checkpoint with its blobs
and pending writes, a page of history, the whole DeltaChannel ancestor walk); saves made at
once share one statement and one commit (``dal.langgraph.group_commit``).

The saver uses the unscoped gateways (keyword ``owner``) of ``dal.gateways.checkpoints`` and
``dal.gateways.threads``: it is trusted server-side code and names the owner itself.

Thread ids are scoped per user: ``config["configurable"]["user_id"]`` (else the saver's own
``user_id``, else none) names the owner of the thread, and two owners' threads ``main`` are two
threads. The owner travels with every call (no lookup): a Mnemo user's id (a UUID) makes the
thread that user's (it shows in their ``GET /v1/threads``); any other value scopes the thread
to that value (its UUIDv5); no user is the nil UUID's scope, reachable only from Python.
"""

from __future__ import annotations

import asyncio
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
from dal.database import open_pool, transaction
from dal.errors import NotFound
from dal.gateways import checkpoints, threads
from dal.langgraph import codec
from dal.langgraph.group_commit import GroupCommit
from dal.records.checkpoints import CheckpointRow, Write, WritesPut
from dal.settings import Settings

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
        self._saves = GroupCommit(pool)
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
        dumps = self.serde.dumps_typed
        put = codec.checkpoint_put(
            owner=owner,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            parent_checkpoint_id=configurable.get("checkpoint_id"),
            checkpoint=checkpoint,
            metadata=get_serializable_checkpoint_metadata(config, metadata),
            values=codec.encode_values(
                checkpoint["channel_values"],
                lambda _channel, value: dumps(value),
                changed=new_versions,
            ),
            versions=new_versions,
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

    def _load(self, type_: str | None, data: bytes | None) -> Any:
        return self.serde.loads_typed((type_ or "", data or b""))

    def _tuple(self, row: CheckpointRow, scope: dict[str, Any]) -> CheckpointTuple:
        decoded = codec.decode_checkpoint(row, load=self._load)
        ids = {"thread_id": row.thread_id, "checkpoint_ns": row.checkpoint_ns, **scope}
        return CheckpointTuple(
            config={"configurable": {**ids, "checkpoint_id": row.checkpoint_id}},
            checkpoint={**row.checkpoint, "channel_values": decoded.values},  # type: ignore[typeddict-item]
            metadata=row.metadata,  # type: ignore[arg-type]
            parent_config=(
                {"configurable": {**ids, "checkpoint_id": row.parent_checkpoint_id}}
                if row.parent_checkpoint_id
                else None
            ),
            pending_writes=decoded.pending_writes,
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
        await threads.delete_thread_of_owner(
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
        await checkpoints.copy_thread_of_owner(
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
            await threads.list_threads_locked_for_prune(conn, owner=owner, thread_ids=ids)
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
        """Versions sort as text (``codec.next_version``)."""
        return codec.next_version(current)

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
