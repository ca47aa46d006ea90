"""Helpers for gateway tests: users and conversations made through the gateways themselves."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from dal.gateways import conversations, users
from dal.records.conversations import Conversation, ConversationDraft
from dal.records.users import User, UserDraft


async def make_user(db: Any, name: str | None = None) -> User:
    return await users.insert_user(
        db, draft=UserDraft(username=name or f"user-{secrets.token_hex(4)}")
    )


async def make_conversation(db: Any, user: User, title: str = "chat") -> Conversation:
    return await conversations.insert_conversation(
        db, user_id=user.id, draft=ConversationDraft(title=title)
    )


@pytest.fixture
async def alice(pool: Any) -> User:
    return await make_user(pool, "alice")


@pytest.fixture
async def bob(pool: Any) -> User:
    return await make_user(pool, "bob")
