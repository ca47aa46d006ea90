"""Gateways of messages: gapless seq under concurrency, idempotent retries, streaming, paging."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from pydantic import ValidationError

from dal import migrate
from dal.database import open_pool, transaction
from dal.errors import Conflict, InvalidInput, NotFound, TooLarge
from dal.gateways import conversations, events, messages
from dal.ids import new_id
from dal.records.conversations import Conversation, ConversationDraft, CreatedConversation
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

# One of each Vercel AI SDK UI message part shape, plus an unknown type kept as given.
AI_SDK_PARTS: list[dict[str, Any]] = [
    {"type": "step-start"},
    {"type": "reasoning", "text": "Thinking…", "providerMetadata": {"openai": {"id": "r1"}}},
    {"type": "text", "text": "Looking up the weather.", "state": "done"},
    {
        "type": "tool-getWeather",
        "toolCallId": "call_1",
        "state": "output-available",
        "input": {"city": "Zürich", "days": 3},
        "output": {"tempC": [4.5, 6, None], "ok": True},
    },
    {
        "type": "tool-getWeather",
        "toolCallId": "call_2",
        "state": "output-error",
        "input": {"city": ""},
        "errorText": "city is required",
    },
    {
        "type": "dynamic-tool",
        "toolName": "mcp.search",
        "toolCallId": "call_3",
        "state": "input-available",
        "input": {"q": "x"},
    },
    {
        "type": "file",
        "mediaType": "image/png",
        "url": "data:image/png;base64,iVBORw0KGgo=",
        "filename": "a.png",
    },
    {"type": "source-url", "sourceId": "s1", "url": "https://example.com", "title": "Ex"},
    {"type": "source-document", "sourceId": "s2", "mediaType": "application/pdf", "title": "D"},
    {"type": "data-weather", "id": "w1", "data": {"status": "done", "nested": [[1], {"a": {}}]}},
    {"type": "text", "text": "晴れ 🌞, 12°C"},
    {"type": "x-future-part", "anything": {"goes": [1, "two"]}},
]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


async def append(
    pool: Any, user: User, conv: Conversation, *parts: dict[str, Any], **kw: Any
) -> Any:
    draft = MessageDraft(role=kw.pop("role", "user"), parts=list(parts), **kw)
    return await messages.insert_message(
        pool, user_id=user.id, conversation_id=conv.id, draft=draft
    )


async def test_insert_message_round_trips_every_ai_sdk_part_shape(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    appended = await append(pool, alice, conv, *AI_SDK_PARTS, role="assistant", metadata={"m": 1})
    assert appended.created and appended.message.seq == 1
    got = await messages.get_message(
        pool, user_id=alice.id, conversation_id=conv.id, message_id=appended.message.id
    )
    assert got.parts == AI_SDK_PARTS and got.metadata == {"m": 1} and got.role == "assistant"
    assert got.content == "Looking up the weather.\n晴れ 🌞, 12°C"
    after = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert after.message_count == 1 and after.last_message_at == got.created_at


async def test_100_concurrent_appends_get_seq_1_to_100_nothing_lost_or_doubled(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    results = await asyncio.gather(*(append(pool, alice, conv, text(f"m{i}")) for i in range(100)))
    assert sorted(r.message.seq for r in results) == list(range(1, 101))
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv.id, limit=200)
    assert [m.seq for m in page.items] == list(range(1, 101))
    assert sorted(m.content for m in page.items) == sorted(f"m{i}" for i in range(100))
    after = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert after.message_count == 100


async def test_insert_message_retry_with_same_id_returns_original_without_gap(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    message_id = new_id()
    first = await append(pool, alice, conv, text("hello"), id=message_id, metadata={"a": 1})
    retry = await append(pool, alice, conv, text("hello"), id=message_id, metadata={"a": 1})
    assert first.created and not retry.created and retry.message == first.message
    nxt = await append(pool, alice, conv, text("next"))
    assert nxt.message.seq == 2
    after = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert after.message_count == 2


@pytest.mark.parametrize(
    "changed",
    [
        {"parts": [text("changed on retry")]},
        {"parts": [text("hello"), text("hello")]},
        {"parts": []},
        {"role": "assistant"},
        {"metadata": {"a": 2}},
        {"metadata": {}},
        {"status": "streaming"},
    ],
    ids=["parts", "more-parts", "no-parts", "role", "metadata", "no-metadata", "status"],
)
async def test_insert_message_retry_with_other_content_raises_idempotency_mismatch(
    pool: Any, alice: User, changed: dict[str, Any]
) -> None:
    conv = await make_conversation(pool, alice)
    message_id = new_id()
    original = {"role": "user", "parts": [text("hello")], "metadata": {"a": 1}}
    first = await messages.insert_message(
        pool,
        user_id=alice.id,
        conversation_id=conv.id,
        draft=MessageDraft(id=message_id, **original),  # type: ignore[arg-type]
    )
    with pytest.raises(Conflict) as raised:
        await messages.insert_message(
            pool,
            user_id=alice.id,
            conversation_id=conv.id,
            draft=MessageDraft(id=message_id, **{**original, **changed}),  # type: ignore[arg-type]
        )
    assert raised.value.code == "idempotency_mismatch"
    assert str(message_id) in raised.value.message
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": message_id}
    assert await messages.get_message(pool, **ids) == first.message
    after = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert after.message_count == 1
    assert (await append(pool, alice, conv, text("next"))).message.seq == 2


async def test_insert_message_retry_after_streaming_and_finalizing_returns_it_as_it_is_now(
    pool: Any, alice: User
) -> None:
    """A retry is compared with the request that created the message, not with what the
    message has become since (parts appended, status complete)."""
    conv = await make_conversation(pool, alice)
    message_id = new_id()
    started = await append(pool, alice, conv, role="assistant", status="streaming", id=message_id)
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": message_id}
    await messages.update_message(pool, **ids, patch=MessagePatch(append_parts=[text("Hi")]))
    done = await messages.update_message(pool, **ids, patch=MessagePatch(status="complete"))
    retry = await append(pool, alice, conv, role="assistant", status="streaming", id=message_id)
    assert not retry.created and retry.message == done and started.message.seq == done.seq
    with pytest.raises(Conflict, match="idempotency|other content"):
        # The message's current content is not the request that created it.
        await append(pool, alice, conv, text("Hi"), role="assistant", id=message_id)


async def test_concurrent_retries_of_one_id_store_it_once(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message_id = new_id()
    results = await asyncio.gather(
        *(append(pool, alice, conv, text("same"), id=message_id) for _ in range(10))
    )
    assert sum(r.created for r in results) == 1
    assert {r.message.seq for r in results} == {1}
    assert (
        await pool.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conv.id)
        == 1
    )
    assert (await append(pool, alice, conv, text("next"))).message.seq == 2


async def test_same_message_id_in_two_conversations_is_two_messages(pool: Any, alice: User) -> None:
    one, two = await make_conversation(pool, alice), await make_conversation(pool, alice)
    message_id = new_id()
    a = await append(pool, alice, one, text("a"), id=message_id)
    b = await append(pool, alice, two, text("b"), id=message_id)
    assert a.created and b.created and a.message.conversation_id != b.message.conversation_id


async def test_insert_message_into_other_users_conversation_raises_not_found(
    pool: Any, alice: User, bob: User
) -> None:
    conv = await make_conversation(pool, alice)
    first = await append(pool, alice, conv, text("mine"))
    with pytest.raises(NotFound):
        await append(pool, bob, conv, text("intrusion"))
    with pytest.raises(NotFound):  # not even a retry of an existing id reveals it
        await append(pool, bob, conv, text("x"), id=first.message.id)
    for call in (messages.get_message, messages.delete_message):
        with pytest.raises(NotFound):
            await call(pool, user_id=bob.id, conversation_id=conv.id, message_id=first.message.id)
    with pytest.raises(NotFound):
        await messages.update_message(
            pool,
            user_id=bob.id,
            conversation_id=conv.id,
            message_id=first.message.id,
            patch=MessagePatch(parts=[text("hijack")]),
        )
    with pytest.raises(NotFound):
        await messages.list_messages(pool, user_id=bob.id, conversation_id=conv.id)
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv.id)
    assert [m.content for m in page.items] == ["mine"]


async def test_list_messages_pages_backwards_and_forwards_by_seq(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    for i in range(1, 26):
        await append(pool, alice, conv, text(f"m{i}"))
    kw = {"user_id": alice.id, "conversation_id": conv.id, "limit": 10}
    newest = await messages.list_messages(pool, **kw)
    assert [m.seq for m in newest.items] == list(range(16, 26)) and newest.has_more
    older = await messages.list_messages(pool, **kw, before=16)
    assert [m.seq for m in older.items] == list(range(6, 16)) and older.has_more
    oldest = await messages.list_messages(pool, **kw, before=6)
    assert [m.seq for m in oldest.items] == list(range(1, 6)) and not oldest.has_more
    forward = await messages.list_messages(pool, **kw, after=0)
    assert [m.seq for m in forward.items] == list(range(1, 11)) and forward.has_more
    forward = await messages.list_messages(pool, **kw, after=20)
    assert [m.seq for m in forward.items] == list(range(21, 26)) and not forward.has_more
    exact = await messages.list_messages(pool, **kw, after=15)
    assert [m.seq for m in exact.items] == list(range(16, 26)) and not exact.has_more
    assert (await messages.list_messages(pool, **kw, after=25)).items == []


async def test_list_messages_of_empty_conversation_is_empty_not_missing(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv.id)
    assert page.items == [] and not page.has_more
    with pytest.raises(NotFound):
        await messages.list_messages(pool, user_id=alice.id, conversation_id=new_id())


async def test_list_messages_bad_arguments_raise_invalid_input(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    kw = {"user_id": alice.id, "conversation_id": conv.id}
    with pytest.raises(InvalidInput):
        await messages.list_messages(pool, **kw, before=3, after=1)
    for limit in (0, 201):
        with pytest.raises(InvalidInput):
            await messages.list_messages(pool, **kw, limit=limit)


async def test_streaming_message_appends_parts_then_finalizes(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    started = await append(pool, alice, conv, role="assistant", status="streaming")
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": started.message.id}
    assert started.message.status == "streaming" and started.message.parts == []
    await messages.update_message(pool, **ids, patch=MessagePatch(append_parts=[text("Hel")]))
    await messages.update_message(
        pool, **ids, patch=MessagePatch(append_parts=[{"type": "step-start"}, text("lo")])
    )
    done = await messages.update_message(
        pool, **ids, patch=MessagePatch(append_parts=[text("!")], status="complete")
    )
    assert done.status == "complete"
    assert done.parts == [text("Hel"), {"type": "step-start"}, text("lo"), text("!")]
    assert done.content == "Hel\nlo\n!"
    with pytest.raises(Conflict, match="complete"):
        await messages.update_message(pool, **ids, patch=MessagePatch(append_parts=[text("late")]))
    with pytest.raises(Conflict):
        await messages.update_message(pool, **ids, patch=MessagePatch(status="streaming"))
    assert (await messages.get_message(pool, **ids)).parts == done.parts


async def test_update_message_replaces_parts_and_metadata_of_complete_message(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    made = await append(pool, alice, conv, text("typo"), metadata={"a": 1})
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": made.message.id}
    edited = await messages.update_message(
        pool, **ids, patch=MessagePatch(parts=[text("fixed")], metadata={"edited": True})
    )
    assert (edited.parts, edited.content, edited.metadata) == (
        [text("fixed")],
        "fixed",
        {"edited": True},
    )
    assert edited.seq == made.message.seq and edited.updated_at > made.message.updated_at
    with pytest.raises(NotFound):
        await messages.update_message(
            pool,
            user_id=alice.id,
            conversation_id=conv.id,
            message_id=new_id(),
            patch=MessagePatch(metadata={}),
        )


async def test_delete_message_leaves_a_tombstone_and_keeps_seq_and_counters(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    made = [await append(pool, alice, conv, text(f"m{i}")) for i in range(3)]
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    await messages.delete_message(pool, **ids, message_id=made[1].message.id)
    gone = await messages.get_message(pool, **ids, message_id=made[1].message.id)
    assert (gone.seq, gone.parts, gone.content, gone.metadata) == (2, [], "", {})
    assert gone.retracted_at is not None and gone.parent_seq == made[1].message.parent_seq
    after = await conversations.get_conversation(pool, **ids)
    assert after.message_count == 3 and after.last_message_at == made[2].message.created_at
    assert (await append(pool, alice, conv, text("new"))).message.seq == 4
    await messages.delete_message(pool, **ids, message_id=made[1].message.id)  # idempotent
    assert await messages.get_message(pool, **ids, message_id=made[1].message.id) == gone
    page = await messages.list_messages(pool, **ids)
    assert [(m.seq, m.content) for m in page.items] == [(1, "m0"), (2, ""), (3, "m2"), (4, "new")]
    with pytest.raises(NotFound):
        await messages.delete_message(pool, **ids, message_id=new_id())


async def test_nul_character_raises_invalid_input_and_stores_nothing(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    with pytest.raises(InvalidInput):
        await append(pool, alice, conv, text("a\x00b"))
    with pytest.raises(InvalidInput):
        await append(pool, alice, conv, text("ok"), metadata={"k": "\x00"})
    after = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert after.message_count == 0
    assert (await append(pool, alice, conv, text("fine"))).message.seq == 1


async def test_unstorable_numbers_are_refused_not_altered(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    with pytest.raises((InvalidInput, ValidationError), match="64-bit"):
        await append(pool, alice, conv, text("big"), metadata={"n": 2**70})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="finite"):
            MessageDraft(role="user", parts=[{"type": "data-x", "data": bad}])
    kept = await append(pool, alice, conv, text("ok"), metadata={"n": 2**63 - 1, "f": 1.5e300})
    got = await messages.get_message(
        pool, user_id=alice.id, conversation_id=conv.id, message_id=kept.message.id
    )
    assert got.metadata == {"n": 2**63 - 1, "f": 1.5e300} and got.seq == 1


async def wait_until_waiting_for_a_lock(pool: Any, pid: int) -> None:
    """Until the backend ``pid`` waits for a lock (its statement has taken its snapshot)."""
    for _ in range(1000):
        waiting = await pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_delete_message_queues_behind_an_append_only_for_the_event_log(
    pool: Any, alice: User
) -> None:
    """A deletion changes no counter of the conversation, but it writes the conversation's
    event log (message.retracted), whose head is the conversation's row: it waits for an
    append in progress to commit, then completes, and the log has both in commit order."""
    conv = await make_conversation(pool, alice)
    older = await append(pool, alice, conv, text("to delete"))
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    async with pool.acquire() as appender, pool.acquire() as deleter:
        tx = appender.transaction()
        await tx.start()
        appended = await messages.insert_message(
            appender, **ids, draft=MessageDraft(role="user", parts=[text("newer")])
        )
        deleting = asyncio.ensure_future(
            messages.delete_message(deleter, **ids, message_id=older.message.id)
        )
        done, _ = await asyncio.wait({deleting}, timeout=0.3)
        assert not done  # queued on the log's head, held by the append
        await tx.commit()
        await asyncio.wait_for(deleting, timeout=10)
    after = await conversations.get_conversation(pool, **ids)
    assert after.message_count == 2
    assert after.last_message_at == appended.message.created_at
    log = await events.list_conversation_events(pool, **ids)
    assert [(e.type, e.payload["id"]) for e in log.items] == [
        ("message.created", str(older.message.id)),
        ("message.created", str(appended.message.id)),
        ("message.retracted", str(older.message.id)),
    ]


async def test_insert_message_retry_in_a_transaction_waiting_on_the_first_keeps_it_usable(
    pool: Any, alice: User
) -> None:
    """A retry of an id inside a caller's transaction, queued behind the transaction storing
    it, gets the stored message and leaves the transaction usable (no aborting error)."""
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    draft = MessageDraft(id=new_id(), role="user", parts=[text("once")])
    stored, commit = asyncio.Event(), asyncio.Event()

    async def first() -> Any:
        async with transaction(pool) as tx:
            made = await messages.insert_message(tx, **ids, draft=draft)
            stored.set()
            await commit.wait()
        return made

    async def second(pid: asyncio.Future[int]) -> tuple[Any, Any]:
        await stored.wait()
        async with transaction(pool) as tx:
            pid.set_result(await tx.fetchval("SELECT pg_backend_pid()"))
            retried = await messages.insert_message(tx, **ids, draft=draft)
            nxt = await messages.insert_message(
                tx, **ids, draft=MessageDraft(role="user", parts=[text("next")])
            )
        return retried, nxt

    pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    first_task, second_task = asyncio.create_task(first()), asyncio.create_task(second(pid))
    await wait_until_waiting_for_a_lock(pool, await pid)
    commit.set()
    made = await first_task
    retried, nxt = await second_task
    assert made.created and not retried.created and retried.message == made.message
    assert nxt.message.seq == 2
    page = await messages.list_messages(pool, **ids)
    assert [(m.seq, m.content) for m in page.items] == [(1, "once"), (2, "next")]


async def test_insert_message_concurrent_retries_each_in_a_transaction_store_it_once(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    draft = MessageDraft(id=new_id(), role="user", parts=[text("same")])

    callers = 8
    all_in_a_transaction = asyncio.Barrier(callers)

    async def caller(n: int) -> tuple[bool, int]:
        async with transaction(pool) as tx:
            await tx.execute("SELECT 1")
            await all_in_a_transaction.wait()
            retried = await messages.insert_message(tx, **ids, draft=draft)
            own = await messages.insert_message(
                tx, **ids, draft=MessageDraft(role="user", parts=[text(f"own {n}")])
            )
            return retried.created, own.message.seq

    results = await asyncio.gather(*(caller(n) for n in range(callers)))
    assert sum(created for created, _ in results) == 1
    page = await messages.list_messages(pool, **ids, limit=50)
    assert [m.seq for m in page.items] == list(range(1, 10))
    assert sum(m.content == "same" for m in page.items) == 1
    after = await conversations.get_conversation(pool, **ids)
    assert after.message_count == 9


# --- size limits ----------------------------------------------------------------------------


def test_gateway_limits_default_to_the_settings_defaults() -> None:
    defaults = Settings.model_fields
    assert messages.MAX_MESSAGE_BYTES == defaults["app_max_message_bytes"].default
    assert messages.MAX_MESSAGE_PARTS == defaults["app_max_message_parts"].default
    assert messages.MAX_PAGE_BYTES == defaults["app_max_page_bytes"].default
    assert conversations.MAX_PAGE_BYTES == defaults["app_max_page_bytes"].default


async def stored_size(pool: Any, message_id: Any) -> tuple[int, int, int]:
    """(parts_bytes, parts_count, bytes of the parts measured afresh) of a stored message."""
    row = await pool.fetchrow(
        "SELECT parts_bytes, parts_count, mnemo_parts_bytes(parts) AS fresh FROM messages "
        "WHERE id = $1",
        message_id,
    )
    return row["parts_bytes"], row["parts_count"], row["fresh"]


async def test_insert_message_over_the_size_limits_raises_too_large_and_stores_nothing(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    # text("x" * n) is n + 28 bytes of JSON as PostgreSQL prints it.
    part = text("x" * 72)
    for limits in ({"max_bytes": 199}, {"max_parts": 1}):
        with pytest.raises(TooLarge) as raised:
            await messages.insert_message(
                pool, **ids, draft=MessageDraft(role="user", parts=[part, part]), **limits
            )
        assert raised.value.code == "message_too_large"
    kept = await messages.insert_message(
        pool,
        **ids,
        draft=MessageDraft(role="user", parts=[part, part]),
        max_bytes=200,
        max_parts=2,
    )
    assert await stored_size(pool, kept.message.id) == (200, 2, 200)
    after = await conversations.get_conversation(pool, **ids)
    assert after.message_count == 1 and kept.message.seq == 1
    # Not even a conversation of someone else's is revealed by the size check.
    with pytest.raises(NotFound):
        await messages.insert_message(
            pool,
            user_id=new_id(),
            conversation_id=conv.id,
            draft=MessageDraft(role="user", parts=[]),
        )


async def test_append_parts_beyond_the_limits_raises_too_large_and_keeps_the_message(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    started = await append(pool, alice, conv, role="assistant", status="streaming")
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": started.message.id}
    limits = {"max_bytes": 300, "max_parts": 3}
    chunk = MessagePatch(append_parts=[text("x" * 72)])  # 100 bytes
    for _ in range(3):
        await messages.update_message(pool, **ids, patch=chunk, **limits)
    with pytest.raises(TooLarge):
        await messages.update_message(pool, **ids, patch=chunk, **limits)
    with pytest.raises(TooLarge):  # the byte limit, within the part count
        await messages.update_message(
            pool, **ids, patch=MessagePatch(parts=[text("x" * 273)]), **limits
        )
    with pytest.raises(TooLarge):  # the part count, within the byte limit
        await messages.update_message(
            pool, **ids, patch=MessagePatch(parts=[text("")] * 4), **limits
        )
    got = await messages.get_message(pool, **ids)
    assert len(got.parts) == 3 and got.status == "streaming"
    assert await stored_size(pool, got.id) == (300, 3, 300)
    # Replacing the parts with smaller ones is fine, and then appends fit again.
    await messages.update_message(pool, **ids, patch=MessagePatch(parts=[text("y")]), **limits)
    done = await messages.update_message(
        pool, **ids, patch=MessagePatch(append_parts=[text("z")], status="complete"), **limits
    )
    assert done.content == "y\nz" and await stored_size(pool, done.id) == (58, 2, 58)
    # A message over a limit lowered since keeps taking edits that leave its parts alone.
    edited = await messages.update_message(
        pool, **ids, patch=MessagePatch(metadata={"k": 1}), max_bytes=50, max_parts=1
    )
    assert edited.metadata == {"k": 1}
    assert await pool.fetchval(
        "SELECT metadata_bytes = octet_length(metadata::text) FROM messages WHERE id = $1",
        edited.id,
    )


async def test_concurrent_appends_never_pass_the_byte_limit_together(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    started = await append(pool, alice, conv, role="assistant", status="streaming")
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": started.message.id}
    chunk = MessagePatch(append_parts=[text("x" * 72)])  # 100 bytes: 5 of 20 fit

    async def one() -> bool:
        try:
            await messages.update_message(pool, **ids, patch=chunk, max_bytes=500)
        except TooLarge:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert sum(results) == 5
    assert await stored_size(pool, started.message.id) == (500, 5, 500)


async def test_metadata_printing_over_max_bytes_raises_too_large_and_changes_nothing(
    pool: Any, alice: User
) -> None:
    """Metadata counts as PostgreSQL stores and prints it: 1e300 is 301 digits, so a small
    request can weigh much more; over max_bytes it is refused, on insert and on edit."""
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    big = {"n": [1e300] * 10}  # 10 * 301 digits printed
    with pytest.raises(TooLarge):
        await messages.insert_message(
            pool, **ids, draft=MessageDraft(role="user", parts=[], metadata=big), max_bytes=3000
        )
    made = await messages.insert_message(
        pool, **ids, draft=MessageDraft(role="user", parts=[], metadata=big), max_bytes=4000
    )
    patch = MessagePatch(metadata={"n": [1e300] * 20})
    with pytest.raises(TooLarge):
        await messages.update_message(
            pool, **ids, message_id=made.message.id, patch=patch, max_bytes=4000
        )
    got = await messages.get_message(pool, **ids, message_id=made.message.id)
    assert got.metadata == big
    assert (await conversations.get_conversation(pool, **ids)).message_count == 1


async def test_append_to_complete_message_over_the_limit_is_still_a_conflict(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    made = await append(pool, alice, conv, text("done"))
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": made.message.id}
    with pytest.raises(Conflict, match="complete"):
        await messages.update_message(
            pool, **ids, patch=MessagePatch(append_parts=[text("x" * 500)]), max_bytes=100
        )


# --- page bytes ------------------------------------------------------------------------------


async def test_list_messages_page_ends_before_max_bytes_with_has_more(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    # Messages of equal weight (mnemo_message_bytes: parts, their text and metadata).
    made = [await append(pool, alice, conv, text(f"{i}" + "x" * 70)) for i in range(10)]
    weight = await pool.fetchval(
        "SELECT mnemo_message_bytes(parts_bytes, content, metadata_bytes) FROM messages "
        "WHERE id = $1",
        made[0].message.id,
    )
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    newest = await messages.list_messages(pool, **ids, limit=50, max_bytes=3 * weight)
    assert [m.seq for m in newest.items] == [8, 9, 10] and newest.has_more
    older = await messages.list_messages(pool, **ids, before=8, max_bytes=3 * weight + 1)
    assert [m.seq for m in older.items] == [5, 6, 7] and older.has_more
    forward = await messages.list_messages(pool, **ids, after=0, max_bytes=4 * weight - 1)
    assert [m.seq for m in forward.items] == [1, 2, 3] and forward.has_more
    last = await messages.list_messages(pool, **ids, after=7, max_bytes=3 * weight)
    assert [m.seq for m in last.items] == [8, 9, 10] and not last.has_more
    # The count still bounds a page too, whichever ends it first.
    counted = await messages.list_messages(pool, **ids, after=0, limit=2, max_bytes=10**9)
    assert [m.seq for m in counted.items] == [1, 2] and counted.has_more
    # A page holds at least one message, however large.
    one = await messages.list_messages(pool, **ids, max_bytes=1)
    assert [m.seq for m in one.items] == [10] and one.has_more
    assert one.items[0] == made[9].message
    first = await messages.list_messages(pool, **ids, before=2, max_bytes=1)
    assert [m.seq for m in first.items] == [1] and not first.has_more


async def test_list_messages_walk_by_bytes_visits_every_message_once(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    sizes = [1, 500, 20, 3000, 40, 40, 40, 2500, 1, 1, 900, 60]
    for i, size in enumerate(sizes):
        await append(pool, alice, conv, text("x" * size), metadata={"i": i})
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    seen: list[int] = []
    page = await messages.list_messages(pool, **ids, limit=4, max_bytes=1200)
    seen = [m.seq for m in page.items] + seen
    while page.has_more:
        page = await messages.list_messages(
            pool, **ids, limit=4, max_bytes=1200, before=page.items[0].seq
        )
        assert page.items
        seen = [m.seq for m in page.items] + seen
    assert seen == list(range(1, len(sizes) + 1))


# --- the migration ---------------------------------------------------------------------------

SIZE_MIGRATION = "20261202_06_m3q8z-message-size"


async def test_size_migration_measures_existing_messages_and_retries_compare_their_content(
    empty_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for id_ in migrate.migration_ids():
        if id_ < SIZE_MIGRATION:  # the schema just before it
            for suffix in (".sql", ".rollback.sql"):
                shutil.copy(migrate.MIGRATIONS_DIR / f"{id_}{suffix}", before)
    migrate.apply(empty_database_url, directory=before)
    user_id, conversation_id, message_id = new_id(), new_id(), new_id()
    parts = [text("old"), {"type": "data-x", "data": {"n": [1, 2.5, None]}}]
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("INSERT INTO users (id, username) VALUES ($1, 'old')", user_id)
        await conn.execute(
            "INSERT INTO conversations (id, user_id, title, last_seq, message_count) "
            "VALUES ($1, $2, 'old', 1, 1)",
            conversation_id,
            user_id,
        )
        await conn.execute(
            "INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata) "
            "VALUES ($1, 1, $2, 'user', $3::jsonb, 'old', '{\"k\": \"vé\"}')",
            conversation_id,
            message_id,
            json.dumps(parts),
        )
        migrate.apply(empty_database_url)
        row = await conn.fetchrow(
            "SELECT parts_bytes, parts_count, metadata_bytes, "
            "parts_bytes = mnemo_parts_bytes(parts) AS exact, "
            "metadata_bytes = octet_length(metadata::text) AS exact_metadata "
            "FROM messages WHERE id = $1",
            message_id,
        )
    finally:
        await conn.close()
    assert row["parts_count"] == 2 and row["exact"] and row["exact_metadata"]
    assert row["parts_bytes"] == len(json.dumps(parts[0]).encode()) + len(
        json.dumps(parts[1]).encode()
    )
    pool = await open_pool(settings.model_copy(update={"database_url": empty_database_url}))
    try:
        ids = {"user_id": user_id, "conversation_id": conversation_id}
        same = MessageDraft(id=message_id, role="user", parts=parts, metadata={"k": "vé"})
        retried = await messages.insert_message(pool, **ids, draft=same)
        assert not retried.created and retried.message.seq == 1
        with pytest.raises(Conflict):
            await messages.insert_message(
                pool, **ids, draft=MessageDraft(id=message_id, role="user", parts=parts)
            )
        again = ConversationDraft(id=conversation_id, title="old")
        assert (await conversations.create_conversation(pool, user_id=user_id, draft=again)) == (
            CreatedConversation(
                conversation=await conversations.get_conversation(
                    pool, user_id=user_id, conversation_id=conversation_id
                ),
                created=False,
            )
        )
        nxt = await append_to(pool, user_id, conversation_id)
        assert nxt.message.seq == 2
    finally:
        await pool.close()


async def append_to(pool: Any, user_id: Any, conversation_id: Any) -> Any:
    return await messages.insert_message(
        pool,
        user_id=user_id,
        conversation_id=conversation_id,
        draft=MessageDraft(role="user", parts=[text("new")]),
    )


async def test_concurrent_appends_retries_and_deletes_keep_the_counters_true(
    pool: Any, alice: User
) -> None:
    """Whatever the interleaving: message_count is the number of messages (a deleted one stays
    as a tombstone), last_message_at that of the newest, seqs 1..n without gaps or repeats."""
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    seeded = [await append(pool, alice, conv, text(f"seed {i}")) for i in range(12)]
    shared = [new_id() for _ in range(4)]

    async def appender(n: int) -> None:
        draft = MessageDraft(id=shared[n % 4], role="user", parts=[text(f"shared {n % 4}")])
        await messages.insert_message(pool, **ids, draft=draft)
        await append(pool, alice, conv, text(f"own {n}"))

    async def deleter(n: int) -> None:
        await messages.delete_message(pool, **ids, message_id=seeded[n].message.id)

    await asyncio.gather(*(appender(n) for n in range(12)), *(deleter(n) for n in range(12)))
    rows = await pool.fetch(
        "SELECT seq, created_at FROM messages WHERE conversation_id = $1 ORDER BY seq", conv.id
    )
    after = await conversations.get_conversation(pool, **ids)
    assert after.message_count == len(rows) == 12 + 4 + 12  # tombstones count
    assert after.last_message_at == rows[-1]["created_at"]
    assert [r["seq"] for r in rows] == list(range(1, 1 + 28))
    gone = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND retracted_at IS NOT NULL",
        conv.id,
    )
    assert gone == 12


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Messages, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    uid = user.id
    conv = await run.one(
        "insert_conversation",
        lambda: conversations.insert_conversation(pool, user_id=uid, draft=ConversationDraft()),
    )
    cid = conv.id
    mid = new_id()
    draft = MessageDraft(id=mid, role="assistant", parts=[], status="streaming")
    await run(
        [
            (
                "insert_message",
                lambda: messages.insert_message(
                    pool, user_id=uid, conversation_id=cid, draft=draft
                ),
            ),
            (
                "insert_message retry",
                lambda: messages.insert_message(
                    pool, user_id=uid, conversation_id=cid, draft=draft
                ),
            ),
            (
                "update_message",
                lambda: messages.update_message(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    message_id=mid,
                    patch=MessagePatch(
                        append_parts=[{"type": "text", "text": "x"}], status="complete"
                    ),
                ),
            ),
            (
                "update_message conflict",
                lambda: messages.update_message(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    message_id=mid,
                    patch=MessagePatch(append_parts=[{"type": "text", "text": "x"}]),
                ),
            ),
            (
                "insert_message NUL",
                lambda: messages.insert_message(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    draft=MessageDraft(role="user", parts=[{"type": "text", "text": "\x00"}]),
                ),
            ),
            (
                "list_messages",
                lambda: messages.list_messages(pool, user_id=uid, conversation_id=cid),
            ),
            (
                "list_messages after",
                lambda: messages.list_messages(pool, user_id=uid, conversation_id=cid, after=0),
            ),
            (
                "get_message",
                lambda: messages.get_message(
                    pool, user_id=uid, conversation_id=cid, message_id=mid
                ),
            ),
            (
                "delete_message",
                lambda: messages.delete_message(
                    pool, user_id=uid, conversation_id=cid, message_id=mid
                ),
            ),
        ]
    )
