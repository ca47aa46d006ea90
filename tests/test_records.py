"""Records built from rows without validation equal records built with it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from dal.database import fetch_all, fetch_one
from dal.gateways import conversations, messages, users
from dal.queries import Q
from dal.records import (
    Conversation,
    ConversationDraft,
    Message,
    MessageDraft,
    Token,
    User,
    UserDraft,
)
from tests.dal.test_messages import AI_SDK_PARTS


def assert_same(record_type: type[BaseModel], row: Any) -> None:
    fast = record_type.from_row(row)  # type: ignore[attr-defined]
    checked = record_type.model_validate(dict(row))
    assert fast == checked
    assert fast.model_dump_json() == checked.model_dump_json()
    assert fast.model_dump() == checked.model_dump()
    assert fast.model_fields_set == checked.model_fields_set
    assert repr(fast) == repr(checked)


async def test_from_row_equals_validated_record_for_every_row_type(pool: Any) -> None:
    created = await users.create_user(
        pool, draft=UserDraft(username="rec", display_name="R", metadata={"a": [1, {"b": None}]})
    )
    uid = created.user.id
    conv = await conversations.insert_conversation(
        pool, user_id=uid, draft=ConversationDraft(title="t", tags=["x"], metadata={"k": 1.5})
    )
    await messages.insert_message(
        pool,
        user_id=uid,
        conversation_id=conv.id,
        draft=MessageDraft(role="assistant", parts=AI_SDK_PARTS, metadata={"m": "✓"}),
    )
    await messages.insert_message(
        pool,
        user_id=uid,
        conversation_id=conv.id,
        draft=MessageDraft(role="user", parts=[], status="streaming"),
    )
    assert_same(User, await fetch_one(pool, Q["get_user"], uid))
    assert_same(Token, await fetch_one(pool, Q["revoke_token"], uid, created.token.token.id))
    assert_same(Conversation, await fetch_one(pool, Q["get_conversation"], uid, conv.id))
    rows = await fetch_all(pool, Q["list_messages_latest"], uid, conv.id, 10)
    assert len(rows) == 2
    for row in rows:
        assert_same(Message, row)


def test_from_row_records_are_frozen() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    now = datetime.now(UTC)
    token = Token.from_row(
        {"id": uuid4(), "user_id": uuid4(), "name": None, "created_at": now, "revoked_at": None}
    )
    with pytest.raises(ValidationError, match="frozen"):
        token.name = "changed"  # type: ignore[misc]
