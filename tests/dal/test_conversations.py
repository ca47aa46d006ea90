"""Gateways of conversations: scoping, keyset listing, optimistic concurrency, cascade delete."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from dal.database import transaction
from dal.errors import Conflict, InvalidInput, NotFound, StaleVersion
from dal.gateways import conversations, messages
from dal.ids import new_id
from dal.records.conversations import ConversationDraft, ConversationPatch
from dal.records.messages import MessageDraft
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


async def test_insert_conversation_stores_title_metadata_tags(pool: Any, alice: User) -> None:
    draft = ConversationDraft(title="Trip 🗺️ 旅行", metadata={"topic": "travel"}, tags=["a", "b"])
    made = await conversations.insert_conversation(pool, user_id=alice.id, draft=draft)
    assert (made.title, made.metadata, made.tags) == (
        "Trip 🗺️ 旅行",
        {"topic": "travel"},
        ["a", "b"],
    )
    assert (made.version, made.message_count, made.last_message_at) == (1, 0, None)
    got = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=made.id)
    assert got == made


async def test_insert_conversation_retry_with_same_id_and_content_returns_the_stored_one(
    pool: Any, alice: User
) -> None:
    draft = ConversationDraft(id=new_id(), title="t", metadata={"k": [1, 2.5]}, tags=["a"])
    made = await conversations.create_conversation(pool, user_id=alice.id, draft=draft)
    # Edited since: the retry is compared with the request that created it.
    edited = await conversations.update_conversation(
        pool,
        user_id=alice.id,
        conversation_id=made.conversation.id,
        patch=ConversationPatch(title="renamed"),
    )
    retry = await conversations.create_conversation(pool, user_id=alice.id, draft=draft)
    assert made.created and not retry.created and retry.conversation == edited
    again = await conversations.insert_conversation(pool, user_id=alice.id, draft=draft)
    assert again == edited
    assert (await conversations.list_conversations(pool, user_id=alice.id)).items == [edited]


async def test_insert_conversation_retry_naming_a_thread_is_a_retry_not_a_thread_conflict(
    pool: Any, alice: User
) -> None:
    draft = ConversationDraft(id=new_id(), title="agent", thread_id="thread-1")
    made = await conversations.create_conversation(pool, user_id=alice.id, draft=draft)
    retry = await conversations.create_conversation(pool, user_id=alice.id, draft=draft)
    assert made.created and not retry.created and retry.conversation == made.conversation
    with pytest.raises(Conflict) as raised:
        await conversations.insert_conversation(
            pool, user_id=alice.id, draft=ConversationDraft(id=draft.id, title="agent")
        )
    assert raised.value.code == "idempotency_mismatch"


@pytest.mark.parametrize(
    "changed",
    [
        {"title": "other"},
        {"metadata": {"k": [1]}},
        {"tags": []},
        {"tags": ["a", "b"]},
        {"thread_id": "t"},
    ],
    ids=["title", "metadata", "no-tags", "more-tags", "thread"],
)
async def test_insert_conversation_retry_with_other_content_raises_idempotency_mismatch(
    pool: Any, alice: User, changed: dict[str, Any]
) -> None:
    original: dict[str, Any] = {"id": new_id(), "title": "t", "metadata": {"k": [1, 2]}}
    original["tags"] = ["a"]
    made = await conversations.insert_conversation(
        pool, user_id=alice.id, draft=ConversationDraft(**original)
    )
    with pytest.raises(Conflict) as raised:
        await conversations.insert_conversation(
            pool, user_id=alice.id, draft=ConversationDraft(**{**original, **changed})
        )
    assert raised.value.code == "idempotency_mismatch"
    got = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=made.id)
    assert got == made


async def test_insert_conversation_with_id_of_another_users_answers_as_a_mismatch(
    pool: Any, alice: User, bob: User
) -> None:
    """Conversation ids are global: another user's id is a conflict, but its answer is the
    one a different request of one's own gets, whatever the content (nothing of it leaks)."""
    draft = ConversationDraft(id=new_id(), title="alice's")
    made = await conversations.insert_conversation(pool, user_id=alice.id, draft=draft)
    errors = []
    for attempt in (draft, ConversationDraft(id=draft.id, title="other")):
        with pytest.raises(Conflict) as raised:
            await conversations.insert_conversation(pool, user_id=bob.id, draft=attempt)
        errors.append((type(raised.value), raised.value.code, raised.value.message))
    own = ConversationDraft(id=new_id(), title="bob's")
    await conversations.insert_conversation(pool, user_id=bob.id, draft=own)
    with pytest.raises(Conflict) as raised:
        await conversations.insert_conversation(
            pool, user_id=bob.id, draft=ConversationDraft(id=own.id, title="changed")
        )
    mine = (type(raised.value), raised.value.code, raised.value.message.replace(str(own.id), "ID"))
    assert [(t, c, m.replace(str(draft.id), "ID")) for t, c, m in errors] == [mine, mine]
    got = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=made.id)
    assert got == made
    with pytest.raises(NotFound):
        await conversations.get_conversation(pool, user_id=bob.id, conversation_id=made.id)


async def test_insert_conversation_concurrent_creates_of_one_id_in_transactions_store_it_once(
    pool: Any, alice: User
) -> None:
    draft = ConversationDraft(id=new_id(), title="once")
    callers = 6
    all_in_a_transaction = asyncio.Barrier(callers)

    async def caller() -> bool:
        async with transaction(pool) as tx:
            await tx.execute("SELECT 1")
            await all_in_a_transaction.wait()
            made = await conversations.create_conversation(tx, user_id=alice.id, draft=draft)
            # The transaction is still usable after a lost race.
            assert await tx.fetchval("SELECT 1") == 1
            return made.created

    assert sorted(await asyncio.gather(*(caller() for _ in range(callers)))) == [False] * (
        callers - 1
    ) + [True]


async def test_insert_conversation_for_missing_user_raises_not_found(pool: Any) -> None:
    with pytest.raises(NotFound):
        await conversations.insert_conversation(pool, user_id=new_id(), draft=ConversationDraft())


async def test_get_conversation_of_other_user_raises_not_found(
    pool: Any, alice: User, bob: User
) -> None:
    mine = await make_conversation(pool, alice)
    with pytest.raises(NotFound):
        await conversations.get_conversation(pool, user_id=bob.id, conversation_id=mine.id)
    with pytest.raises(NotFound):
        await conversations.update_conversation(
            pool, user_id=bob.id, conversation_id=mine.id, patch=ConversationPatch(title="x")
        )
    with pytest.raises(NotFound):
        await conversations.delete_conversation(pool, user_id=bob.id, conversation_id=mine.id)
    assert (await conversations.list_conversations(pool, user_id=bob.id)).items == []
    assert await conversations.get_conversation(pool, user_id=alice.id, conversation_id=mine.id)


async def test_list_conversations_pages_by_keyset_newest_activity_first(
    pool: Any, alice: User, bob: User
) -> None:
    made = [await make_conversation(pool, alice, f"c{i}") for i in range(7)]
    await make_conversation(pool, bob)
    # Activity moves a conversation to the front.
    await messages.insert_message(
        pool,
        user_id=alice.id,
        conversation_id=made[2].id,
        draft=MessageDraft(role="user", parts=[{"type": "text", "text": "hi"}]),
    )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await conversations.list_conversations(
            pool, user_id=alice.id, limit=3, cursor=cursor
        )
        seen += [c.title for c in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["c2", "c6", "c5", "c4", "c3", "c1", "c0"]
    assert pages == 3


async def test_list_conversations_exact_multiple_of_page_has_no_extra_page(
    pool: Any, alice: User
) -> None:
    for i in range(4):
        await make_conversation(pool, alice, f"c{i}")
    first = await conversations.list_conversations(pool, user_id=alice.id, limit=2)
    second = await conversations.list_conversations(
        pool, user_id=alice.id, limit=2, cursor=first.next_cursor
    )
    assert [c.title for c in second.items] == ["c1", "c0"] and second.next_cursor is None


@pytest.mark.parametrize("cursor", ["nope", "", "W10", "WyJ4IiwieSJd", "e30"])
async def test_list_conversations_bad_cursor_raises_invalid_input(
    pool: Any, alice: User, cursor: str
) -> None:
    with pytest.raises(InvalidInput):
        await conversations.list_conversations(pool, user_id=alice.id, cursor=cursor or "=")


async def test_list_conversations_limit_out_of_range_raises_invalid_input(
    pool: Any, alice: User
) -> None:
    for limit in (0, 201):
        with pytest.raises(InvalidInput):
            await conversations.list_conversations(pool, user_id=alice.id, limit=limit)


async def test_update_conversation_bumps_version_and_honours_expected_version(
    pool: Any, alice: User
) -> None:
    made = await make_conversation(pool, alice, "old")
    patched = await conversations.update_conversation(
        pool,
        user_id=alice.id,
        conversation_id=made.id,
        patch=ConversationPatch(title="new", tags=["x"]),
        expected_version=1,
    )
    assert (patched.title, patched.tags, patched.metadata, patched.version) == ("new", ["x"], {}, 2)
    with pytest.raises(StaleVersion, match="at version 2, not 1"):
        await conversations.update_conversation(
            pool,
            user_id=alice.id,
            conversation_id=made.id,
            patch=ConversationPatch(title="lost update"),
            expected_version=1,
        )
    got = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=made.id)
    assert got.title == "new" and got.version == 2


async def test_delete_conversation_deletes_its_messages(pool: Any, alice: User) -> None:
    made = await make_conversation(pool, alice)
    for _ in range(3):
        await messages.insert_message(
            pool,
            user_id=alice.id,
            conversation_id=made.id,
            draft=MessageDraft(role="user", parts=[]),
        )
    await conversations.delete_conversation(pool, user_id=alice.id, conversation_id=made.id)
    assert (
        await pool.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", made.id)
        == 0
    )
    with pytest.raises(NotFound):
        await conversations.get_conversation(pool, user_id=alice.id, conversation_id=made.id)
    with pytest.raises(NotFound):
        await conversations.delete_conversation(pool, user_id=alice.id, conversation_id=made.id)


async def test_list_conversations_page_ends_before_max_bytes_and_walks_every_one_once(
    pool: Any, alice: User
) -> None:
    # Each weighs its title, metadata, tags and thread as JSON text: about 1,000 bytes.
    for i in range(7):
        await conversations.insert_conversation(
            pool,
            user_id=alice.id,
            draft=ConversationDraft(title=f"c{i}", metadata={"blob": "x" * 1000}),
        )
    first = await conversations.list_conversations(pool, user_id=alice.id, max_bytes=2500)
    assert [c.title for c in first.items] == ["c6", "c5"] and first.next_cursor
    assert all(c.metadata == {"blob": "x" * 1000} for c in first.items)
    seen = [c.title for c in first.items]
    page = first
    while page.next_cursor:
        page = await conversations.list_conversations(
            pool, user_id=alice.id, max_bytes=2500, cursor=page.next_cursor
        )
        assert page.items
        seen += [c.title for c in page.items]
    assert seen == [f"c{i}" for i in reversed(range(7))]
    # At least one, however small the budget; the count still ends a page first.
    one = await conversations.list_conversations(pool, user_id=alice.id, max_bytes=1)
    assert [c.title for c in one.items] == ["c6"] and one.next_cursor
    counted = await conversations.list_conversations(pool, user_id=alice.id, limit=3)
    assert [c.title for c in counted.items] == ["c6", "c5", "c4"] and counted.next_cursor
    everything = await conversations.list_conversations(pool, user_id=alice.id, limit=7)
    assert len(everything.items) == 7 and everything.next_cursor is None


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Conversations, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    uid = user.id
    conv = await run.one(
        "insert_conversation",
        lambda: conversations.insert_conversation(pool, user_id=uid, draft=ConversationDraft()),
    )
    cid = conv.id
    await run(
        [
            (
                "create_conversation",
                lambda: conversations.create_conversation(
                    pool, user_id=uid, draft=ConversationDraft(title="second")
                ),
            ),
            (
                "get_conversation",
                lambda: conversations.get_conversation(pool, user_id=uid, conversation_id=cid),
            ),
            ("list_conversations", lambda: conversations.list_conversations(pool, user_id=uid)),
            (
                "update_conversation stale",
                lambda: conversations.update_conversation(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    patch=ConversationPatch(title="t"),
                    expected_version=9,
                ),
            ),
            (
                "delete_conversation",
                lambda: conversations.delete_conversation(pool, user_id=uid, conversation_id=cid),
            ),
        ]
    )
