"""SQLAlchemy 2 async ORM on Mnemo's own ``conversations`` and ``messages`` tables.

Written as SQLAlchemy's asyncio and ORM documentation teaches: declarative ``Mapped`` models,
``create_async_engine`` with the asyncpg driver, ``async_sessionmaker(expire_on_commit=False)``
and one session per operation, ``async with session.begin()`` around the work.

- append: in one transaction, the caller's conversation is read ``with_for_update()`` (which
  is also the ownership check), its counter row bumped (``last_seq``, ``message_count``,
  ``last_message_at``), and a ``Message`` with ``seq = last_seq`` added; the commit flushes the
  UPDATE and the INSERT (server defaults come back by RETURNING). Concurrent appends to one
  conversation queue on the row lock: gapless seqs, as Mnemo's.
- page: ``select(Message)`` joined to the caller's conversation, ``order_by(seq.desc())``,
  ``limit(51)``, the newest 50 reversed to oldest first (the 51st says there are more).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, DateTime, ForeignKey, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench.orm.contenders import PAGE_LIMIT, PARTS, Item, Side
from bench.orm.shape import derive
from dal.ids import new_id


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID]
    title: Mapped[str]
    message_count: Mapped[int]
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    __tablename__ = "messages"

    conversation_id: Mapped[UUID] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[UUID]
    role: Mapped[str]
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    content: Mapped[str]
    # "metadata" is the declarative base's own attribute: mapped under another name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    status: Mapped[str]
    parts_bytes: Mapped[int] = mapped_column(BigInteger)
    parts_count: Mapped[int]
    metadata_bytes: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def engine_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


class SQLAlchemySide:
    name = "sqlalchemy"

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def append(self, user_id: UUID, conversation_id: UUID) -> None:
        derived = derive(PARTS, {})
        async with self.sessions() as session, session.begin():
            conversation = await session.scalar(
                select(Conversation)
                .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
                .with_for_update()
            )
            if conversation is None:
                raise LookupError("conversation not found")
            now = datetime.now(UTC)
            conversation.last_seq += 1
            conversation.message_count += 1
            conversation.last_message_at = now
            conversation.updated_at = now
            session.add(
                Message(
                    conversation_id=conversation_id,
                    seq=conversation.last_seq,
                    id=new_id(),
                    role="user",
                    parts=PARTS,
                    content=derived.content,
                    metadata_={},
                    status="complete",
                    parts_bytes=derived.parts_bytes,
                    parts_count=derived.parts_count,
                    metadata_bytes=derived.metadata_bytes,
                )
            )

    async def page(self, user_id: UUID, conversation_id: UUID) -> Sequence[Message]:
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(Message)
                    .join(Conversation)
                    .where(
                        Conversation.user_id == user_id, Message.conversation_id == conversation_id
                    )
                    .order_by(Message.seq.desc())
                    .limit(PAGE_LIMIT + 1)
                )
            ).all()
        return rows[:PAGE_LIMIT][::-1]

    def items(self, page: Sequence[Message]) -> list[Item]:
        return [
            Item(
                m.id,
                m.seq,
                m.role,
                m.parts,
                m.content,
                m.metadata_,
                m.status,
                m.created_at,
                m.updated_at,
            )
            for m in page
        ]

    async def close(self) -> None:
        await self.engine.dispose()


async def open_side(url: str, pool_size: int) -> Side:
    engine = create_async_engine(engine_url(url), pool_size=pool_size, max_overflow=0)
    return SQLAlchemySide(engine)
