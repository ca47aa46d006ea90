"""The contenders, each with the same two operations on Mnemo's migrated tables.

- ``raw``: asyncpg running Mnemo's named queries' SQL, rows left as ``asyncpg.Record``
  (the messages suite's raw contender);
- ``mnemo``: Mnemo's gateways (``dal.gateways.messages``);
- ``sqlalchemy``, ``sqlmodel``, ``tortoise``: the ORMs, in ``bench/orm/<orm>_side.py``.

``append(user_id, conversation_id)`` appends one user message with one text part to the
caller's conversation; ``page(user_id, conversation_id)`` reads its newest 50 messages, oldest
first, as the contender's own objects (records, ORM instances); ``items(page)`` turns them into
``Item`` tuples for the data check (not timed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeAlias
from uuid import UUID

import asyncpg

from bench.messages.workloads import APPEND_TEXT, INSERT_SQL, PAGE_LIMIT, PAGE_SQL, append_raw
from dal.database import pool_options
from dal.gateways import messages
from dal.records.messages import MessageDraft
from dal.settings import Settings

Pool: TypeAlias = "asyncpg.Pool[Any]"
PARTS: list[dict[str, Any]] = [{"type": "text", "text": APPEND_TEXT}]

__all__ = ["APPEND_TEXT", "INSERT_SQL", "PAGE_LIMIT", "PARTS", "Item", "Side"]


class Item(NamedTuple):
    """One message of a page, as every contender must return it."""

    id: UUID
    seq: int
    role: str
    parts: list[dict[str, Any]]
    content: str
    metadata: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


class Side(Protocol):
    name: str

    async def append(self, user_id: UUID, conversation_id: UUID) -> None: ...

    async def page(self, user_id: UUID, conversation_id: UUID) -> Sequence[Any]: ...

    def items(self, page: Sequence[Any]) -> list[Item]: ...

    async def close(self) -> None: ...


async def open_pool(url: str, pool_size: int) -> Pool:
    settings = Settings(
        database_url=url, db_min_connections=pool_size, db_max_connections=pool_size
    )
    return await asyncpg.create_pool(url, **pool_options(settings))


class Raw:
    name = "raw"

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def append(self, user_id: UUID, conversation_id: UUID) -> None:
        await append_raw(self.pool, user_id, conversation_id)

    async def page(self, user_id: UUID, conversation_id: UUID) -> Sequence[Any]:
        # Oldest first; with more messages than a page, the first row only says so.
        return await self.pool.fetch(
            PAGE_SQL, user_id, conversation_id, PAGE_LIMIT + 1, messages.MAX_PAGE_BYTES
        )

    def items(self, page: Sequence[Any]) -> list[Item]:
        return [Item(*(row[f] for f in Item._fields)) for row in page[-PAGE_LIMIT:]]

    async def close(self) -> None:
        await self.pool.close()


class Mnemo:
    name = "mnemo"

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def append(self, user_id: UUID, conversation_id: UUID) -> None:
        await messages.insert_message(
            self.pool,
            user_id=user_id,
            conversation_id=conversation_id,
            draft=MessageDraft(role="user", parts=[{"type": "text", "text": APPEND_TEXT}]),
        )

    async def page(self, user_id: UUID, conversation_id: UUID) -> Sequence[Any]:
        page = await messages.list_messages(
            self.pool, user_id=user_id, conversation_id=conversation_id, limit=PAGE_LIMIT
        )
        return page.items

    def items(self, page: Sequence[Any]) -> list[Item]:
        return [Item(*(getattr(m, f) for f in Item._fields)) for m in page]

    async def close(self) -> None:
        await self.pool.close()


async def open_raw(url: str, pool_size: int) -> Side:
    return Raw(await open_pool(url, pool_size))


async def open_mnemo(url: str, pool_size: int) -> Side:
    return Mnemo(await open_pool(url, pool_size))
