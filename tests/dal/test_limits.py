"""Message limits (APP_MAX_MESSAGES_PER_CONVERSATION, APP_MAX_MESSAGES_PER_USER), enforced in
the append's one statement: never one message over, however many appends race."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from dal.database import open_pool
from dal.errors import OverLimit
from dal.gateways import messages
from dal.ids import new_id
from dal.records.conversations import Conversation
from dal.records.messages import MessageDraft
from dal.records.users import User
from dal.settings import Settings
from dal.usecases.transfer import import_conversations, read_documents
from tests.dal.conftest import make_conversation, make_user


async def say(db: Any, user: User, conv: Conversation, **kw: Any) -> Any:
    draft = MessageDraft(
        id=kw.pop("id", None), role="user", parts=[{"type": "text", "text": "hello"}]
    )
    return await messages.insert_message(
        db, user_id=user.id, conversation_id=conv.id, draft=draft, **kw
    )


async def outcome(task: Any) -> str:
    try:
        await task
    except OverLimit:
        return "over"
    return "stored"


async def count(pool: Any, user: User) -> int:
    value: int = await pool.fetchval(
        "SELECT sum(message_count) FROM user_message_counts WHERE user_id = $1", user.id
    )
    return value


@pytest.fixture
async def wide_pool(settings: Settings) -> Any:
    """A pool of 50 connections: the 50 appends really run at once."""
    pool = await open_pool(
        settings.model_copy(update={"db_min_connections": 50, "db_max_connections": 50})
    )
    try:
        yield pool
    finally:
        await pool.close()


async def test_50_concurrent_appends_to_a_conversation_limited_to_20_store_20(
    wide_pool: Any, alice: User
) -> None:
    conv = await make_conversation(wide_pool, alice)
    results = await asyncio.gather(
        *(outcome(say(wide_pool, alice, conv, max_per_conversation=20)) for _ in range(50))
    )
    assert results.count("stored") == 20 and results.count("over") == 30
    stored = await wide_pool.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1", conv.id
    )
    assert stored == 20
    assert await count(wide_pool, alice) == 20


async def test_50_concurrent_appends_by_a_user_limited_to_20_over_50_conversations_store_20(
    wide_pool: Any, alice: User
) -> None:
    """Each append to its own conversation: only the sender's count stands between them. The
    first 5 messages, written with no limit set, were counted in their conversations' stripes
    and count all the same."""
    convs = [await make_conversation(wide_pool, alice) for _ in range(50)]
    for conv in convs[:5]:
        await say(wide_pool, alice, conv)
    stripes = await wide_pool.fetchval(
        "SELECT count(*) FROM user_message_counts WHERE user_id = $1 AND message_count > 0",
        alice.id,
    )
    assert stripes > 1
    results = await asyncio.gather(
        *(outcome(say(wide_pool, alice, conv, max_per_user=20)) for conv in convs)
    )
    assert results.count("stored") == 15
    stored = await wide_pool.fetchval(
        "SELECT count(*) FROM messages WHERE sender_id = $1", alice.id
    )
    assert stored == 20 and await count(wide_pool, alice) == 20


async def test_over_the_limit_nothing_is_stored_and_the_message_names_the_limit(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    await say(pool, alice, conv, max_per_conversation=1)
    with pytest.raises(OverLimit) as refused:
        await say(pool, alice, conv, max_per_conversation=1)
    assert refused.value.code == "limit_reached"
    assert "APP_MAX_MESSAGES_PER_CONVERSATION" in refused.value.message
    assert "1 messages" in refused.value.message
    with pytest.raises(OverLimit, match="APP_MAX_MESSAGES_PER_USER"):
        await say(pool, alice, await make_conversation(pool, alice), max_per_user=1)
    after = await pool.fetchrow(
        "SELECT last_seq, message_count, session_no FROM conversations WHERE id = $1", conv.id
    )
    assert tuple(after) == (1, 1, 1) and await count(pool, alice) == 1


async def test_a_retry_of_a_stored_id_is_not_refused_by_the_limit(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message_id = new_id()
    first = await say(pool, alice, conv, id=message_id, max_per_conversation=1)
    again = await say(pool, alice, conv, id=message_id, max_per_conversation=1, max_per_user=1)
    assert first.created and not again.created and again.message.id == message_id
    assert await count(pool, alice) == 1


async def test_the_replaced_systems_limits_1000_per_conversation_10000_per_user(
    pool: Any, alice: User
) -> None:
    """Counts seeded by SQL (as 1,000 and 10,000 appends would leave them)."""
    limits = {"max_per_conversation": 1000, "max_per_user": 10_000}
    conv = await make_conversation(pool, alice)
    await pool.execute(
        "UPDATE conversations SET message_count = 999, last_seq = 999 WHERE id = $1", conv.id
    )
    last = await say(pool, alice, conv, **limits)
    assert last.message.seq == 1000
    with pytest.raises(OverLimit, match="1000 messages"):
        await say(pool, alice, conv, **limits)
    other = await make_conversation(pool, alice)
    await pool.execute(
        "UPDATE user_message_counts SET message_count = 0 WHERE user_id = $1", alice.id
    )
    await pool.execute(
        "UPDATE user_message_counts SET message_count = 9999 WHERE user_id = $1 AND stripe = 0",
        alice.id,
    )
    await say(pool, alice, other, **limits)
    with pytest.raises(OverLimit, match="10000 messages"):
        await say(pool, alice, other, **limits)
    # Another user still writes in the same conversation.
    bob = await make_user(pool)
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " VALUES ($1, $2, 'member')",
        other.id,
        bob.id,
    )
    assert (await say(pool, bob, other, **limits)).created


async def test_the_count_is_kept_with_no_limit_set(pool: Any, alice: User) -> None:
    """Counting always: a limit turned on later sees every message written before."""
    assert await count(pool, alice) == 0  # a new user has a count row from the start
    conv = await make_conversation(pool, alice)
    for _ in range(3):
        await say(pool, alice, conv)
    assert await count(pool, alice) == 3
    with pytest.raises(OverLimit):
        await say(pool, alice, conv, max_per_user=3)


async def test_imported_messages_count_as_the_importers(pool: Any, alice: User) -> None:
    ui = [
        {"id": "a", "role": "user", "parts": [{"type": "text", "text": "one"}]},
        {"id": "b", "role": "assistant", "parts": [{"type": "text", "text": "two"}]},
    ]
    await import_conversations(pool, user_id=alice.id, documents=read_documents(orjson.dumps(ui)))
    await import_conversations(pool, user_id=alice.id, documents=read_documents(orjson.dumps(ui)))
    assert await count(pool, alice) == 4
    conv = await make_conversation(pool, alice)
    with pytest.raises(OverLimit):
        await say(pool, alice, conv, max_per_user=4)
