"""SQLModel on Mnemo's own ``conversations`` and ``messages`` tables, async.

Written as SQLModel's tutorial teaches (``table=True`` models, ``select``, ``session.exec``,
``session.add`` / ``commit`` / ``refresh``), with its async session
(``sqlmodel.ext.asyncio.session.AsyncSession``) on ``create_async_engine`` and asyncpg, one
session per operation.

- append: the caller's conversation read ``with_for_update()`` (the ownership check and the
  lock that keeps seqs gapless), its counters bumped, a ``Message`` with ``seq = last_seq``
  added, ``commit()``, then ``refresh(message)`` as the tutorial does to hand back the stored
  row (its server-side ``created_at``).
- page: ``select(Message)`` joined to the caller's conversation, newest first, ``limit(51)``,
  the newest 50 reversed to oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.orm.contenders import PAGE_LIMIT, PARTS, Item, Side
from bench.orm.shape import derive
from bench.orm.sqlalchemy_side import engine_url
from dal.ids import new_id


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"

    id: UUID = Field(primary_key=True)
    user_id: UUID
    title: str = ""
    message_count: int = 0
    last_seq: int = Field(default=0, sa_type=BigInteger)
    last_message_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class Message(SQLModel, table=True):
    __tablename__ = "messages"

    conversation_id: UUID = Field(foreign_key="conversations.id", primary_key=True)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    id: UUID
    role: str
    parts: list[dict[str, Any]] = Field(sa_type=JSONB)
    content: str
    # "metadata" is SQLModel's own class attribute: the column is mapped under another name.
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSONB))
    status: str = "complete"
    parts_bytes: int = Field(sa_type=BigInteger)
    parts_count: int
    metadata_bytes: int
    created_at: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now()},
    )
    updated_at: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now()},
    )


class SQLModelSide:
    name = "sqlmodel"

    def __init__(self, url: str, pool_size: int) -> None:
        self.engine = create_async_engine(engine_url(url), pool_size=pool_size, max_overflow=0)

    async def append(self, user_id: UUID, conversation_id: UUID) -> None:
        derived = derive(PARTS, {})
        async with AsyncSession(self.engine) as session:
            statement = (
                select(Conversation)
                .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
                .with_for_update()
            )
            conversation = (await session.exec(statement)).first()
            if conversation is None:
                raise LookupError("conversation not found")
            now = datetime.now(UTC)
            conversation.last_seq += 1
            conversation.message_count += 1
            conversation.last_message_at = now
            conversation.updated_at = now
            message = Message(
                conversation_id=conversation_id,
                seq=conversation.last_seq,
                id=new_id(),
                role="user",
                parts=PARTS,
                content=derived.content,
                meta={},
                status="complete",
                parts_bytes=derived.parts_bytes,
                parts_count=derived.parts_count,
                metadata_bytes=derived.metadata_bytes,
            )
            session.add(conversation)
            session.add(message)
            await session.commit()
            await session.refresh(message)

    async def page(self, user_id: UUID, conversation_id: UUID) -> Sequence[Message]:
        async with AsyncSession(self.engine) as session:
            statement = (
                select(Message)
                .join(Conversation)
                .where(Conversation.user_id == user_id, Message.conversation_id == conversation_id)
                .order_by(Message.seq.desc())  # type: ignore[attr-defined]
                .limit(PAGE_LIMIT + 1)
            )
            rows = (await session.exec(statement)).all()
        return rows[:PAGE_LIMIT][::-1]

    def items(self, page: Sequence[Message]) -> list[Item]:
        return [
            Item(
                m.id,
                m.seq,
                m.role,
                m.parts,
                m.content,
                m.meta,
                m.status,
                m.created_at,
                m.updated_at,
            )  # type: ignore[arg-type]
            for m in page
        ]

    async def close(self) -> None:
        await self.engine.dispose()


async def open_side(url: str, pool_size: int) -> Side:
    return SQLModelSide(url, pool_size)
