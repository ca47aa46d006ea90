"""Tortoise ORM on Mnemo's own ``conversations`` and ``messages`` tables.

Written as Tortoise's documentation teaches: ``Model`` classes with ``Meta.table``,
``Tortoise.init`` with the asyncpg backend, ``in_transaction()``, ``select_for_update()``,
``Model.create`` and ``filter(...).order_by(...).limit(...)``.

Tortoise wants one primary-key field per model, and ``messages``' key is
``(conversation_id, seq)``: the model declares the message ``id`` (a UUIDv7, unique in the
table; the table's ``UNIQUE (conversation_id, id)`` backs it) as its key. Nothing is created
by Tortoise; the tables are Mnemo's migrated ones.

- append: in ``in_transaction()``, the caller's conversation read ``select_for_update()`` (the
  ownership check and the lock that keeps seqs gapless), its counters bumped and saved
  (``update_fields``), and ``Message.create(seq=last_seq, ...)``.
- page: ``Message.filter(conversation_id=..., conversation__user_id=...)``, ``order_by("-seq")``,
  ``limit(51)``, the newest 50 reversed to oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from tortoise import Tortoise, fields
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bench.orm.contenders import PAGE_LIMIT, PARTS, Item, Side
from bench.orm.shape import derive
from dal.ids import new_id


class Conversation(Model):
    id = fields.UUIDField(primary_key=True)
    user_id = fields.UUIDField()
    title = fields.TextField(default="")
    message_count = fields.IntField(default=0)
    last_seq = fields.BigIntField(default=0)
    last_message_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "conversations"


class Message(Model):
    id = fields.UUIDField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages"
    )
    seq = fields.BigIntField()
    role = fields.TextField()
    parts: Any = fields.JSONField()
    content = fields.TextField()
    metadata: Any = fields.JSONField(default=dict)
    status = fields.TextField(default="complete")
    parts_bytes = fields.BigIntField()
    parts_count = fields.IntField()
    metadata_bytes = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "messages"


def config(url: str, pool_size: int) -> dict[str, Any]:
    parts = urlsplit(url)
    socket = parse_qs(parts.query).get("host")
    credentials = {
        "host": socket[0] if socket else parts.hostname or "localhost",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "database": parts.path.lstrip("/"),
        "minsize": pool_size,
        "maxsize": pool_size,
    }
    return {
        "connections": {
            "default": {"engine": "tortoise.backends.asyncpg", "credentials": credentials}
        },
        "apps": {"models": {"models": [__name__], "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


class TortoiseSide:
    name = "tortoise"

    async def append(self, user_id: UUID, conversation_id: UUID) -> None:
        derived = derive(PARTS, {})
        async with in_transaction() as connection:
            conversation = (
                await Conversation.filter(id=conversation_id, user_id=user_id)
                .select_for_update()
                .using_db(connection)
                .get_or_none()
            )
            if conversation is None:
                raise LookupError("conversation not found")
            conversation.last_seq += 1
            conversation.message_count += 1
            conversation.last_message_at = datetime.now(UTC)
            await conversation.save(
                using_db=connection,
                update_fields=["last_seq", "message_count", "last_message_at", "updated_at"],
            )
            await Message.create(
                using_db=connection,
                conversation_id=conversation_id,
                seq=conversation.last_seq,
                id=new_id(),
                role="user",
                parts=PARTS,
                content=derived.content,
                metadata={},
                status="complete",
                parts_bytes=derived.parts_bytes,
                parts_count=derived.parts_count,
                metadata_bytes=derived.metadata_bytes,
            )

    async def page(self, user_id: UUID, conversation_id: UUID) -> Sequence[Message]:
        rows = (
            await Message.filter(conversation_id=conversation_id, conversation__user_id=user_id)
            .order_by("-seq")
            .limit(PAGE_LIMIT + 1)
        )
        return rows[:PAGE_LIMIT][::-1]

    def items(self, page: Sequence[Message]) -> list[Item]:
        return [
            Item(
                m.id,
                m.seq,
                m.role,
                m.parts,
                m.content,
                m.metadata,
                m.status,
                m.created_at,
                m.updated_at,
            )
            for m in page
        ]

    async def close(self) -> None:
        await Tortoise.close_connections()


async def open_side(url: str, pool_size: int) -> Side:
    await Tortoise.init(config=config(url, pool_size))
    return TortoiseSide()
