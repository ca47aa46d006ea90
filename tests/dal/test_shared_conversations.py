"""Conversations shared by members: what the existing gateways do once a conversation has more
than its owner (README "Shared conversations"). Members are added here with SQL, so that these
tests depend only on the schema and the gateways they exercise."""

from __future__ import annotations

from typing import Any

import pytest

from dal.errors import NotFound, NotPermitted, OverLimit
from dal.gateways import conversations, messages
from dal.records.conversations import Conversation, ConversationPatch
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.search import MessageSearch
from dal.records.users import User
from dal.usecases import branches as branching
from tests.dal.conftest import make_conversation, make_user


def text(body: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": body}]


async def join(pool: Any, conv: Conversation, user: User, role: str = "member") -> None:
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)",
        conv.id,
        user.id,
        role,
    )
    await pool.execute(
        "UPDATE conversations SET member_count = member_count + 1 WHERE id = $1", conv.id
    )


async def say(pool: Any, user: User, conv: Conversation, body: str, **kw: Any) -> Any:
    appended = await messages.insert_message(
        pool,
        user_id=user.id,
        conversation_id=conv.id,
        draft=MessageDraft(role=kw.pop("role", "user"), parts=text(body), **kw),
    )
    return appended.message


async def test_the_creator_is_the_owner_member(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    rows = await pool.fetch(
        "SELECT user_id, role FROM conversation_members WHERE conversation_id = $1", conv.id
    )
    assert [(r["user_id"], r["role"]) for r in rows] == [(alice.id, "owner")]
    assert (conv.kind, conv.member_count, conv.leaf_seq, conv.tool_integrity) == (
        "group",
        1,
        None,
        "off",
    )


async def test_a_member_reads_and_writes_and_a_stranger_sees_nothing(
    pool: Any, alice: User, bob: User
) -> None:
    carol = await make_user(pool, "carol")
    conv = await make_conversation(pool, alice, "team")
    await join(pool, conv, bob)
    first = await say(pool, alice, conv, "hello team")
    second = await say(pool, bob, conv, "hi alice", reply_to=first.id)
    assert (first.sender_id, second.sender_id) == (alice.id, bob.id)
    assert (first.seq, second.seq) == (1, 2)
    assert (first.parent_seq, second.parent_seq) == (None, 1)
    assert second.reply_to == first.id

    seen = await conversations.get_conversation(pool, user_id=bob.id, conversation_id=conv.id)
    assert (seen.leaf_seq, seen.message_count, seen.member_count) == (2, 2, 2)
    page = await messages.list_messages(pool, user_id=bob.id, conversation_id=conv.id)
    assert [m.seq for m in page.items] == [1, 2]
    listed = await conversations.list_conversations(pool, user_id=bob.id)
    assert [c.id for c in listed.items] == [conv.id]

    # Appending leaves read positions alone (own messages are never unread): both where they
    # were when they joined.
    positions = dict(
        await pool.fetch(
            "SELECT user_id, last_read_seq FROM conversation_members WHERE conversation_id = $1",
            conv.id,
        )
    )
    assert positions == {alice.id: 0, bob.id: 0}

    for call in (
        conversations.get_conversation(pool, user_id=carol.id, conversation_id=conv.id),
        messages.list_messages(pool, user_id=carol.id, conversation_id=conv.id),
        messages.get_message(pool, user_id=carol.id, conversation_id=conv.id, message_id=first.id),
        say(pool, carol, conv, "let me in"),
        conversations.delete_conversation(pool, user_id=carol.id, conversation_id=conv.id),
        messages.delete_message(
            pool, user_id=carol.id, conversation_id=conv.id, message_id=first.id
        ),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await conversations.list_conversations(pool, user_id=carol.id)).items == []
    assert (
        await pool.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conv.id)
        == 2
    )


async def test_a_reply_names_a_message_of_the_same_conversation(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    other = await make_conversation(pool, alice, "other")
    elsewhere = await say(pool, alice, other, "over there")
    with pytest.raises(NotFound, match="reply_to"):
        await say(pool, alice, conv, "re", reply_to=elsewhere.id)
    assert (
        await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    ).message_count == 0


async def test_rights_come_from_the_role(pool: Any, alice: User, bob: User) -> None:
    conv = await make_conversation(pool, alice)
    await join(pool, conv, bob)
    mine = await say(pool, alice, conv, "alice's")
    with pytest.raises(NotPermitted):
        await conversations.update_conversation(
            pool, user_id=bob.id, conversation_id=conv.id, patch=ConversationPatch(title="x")
        )
    with pytest.raises(NotPermitted):
        await conversations.delete_conversation(pool, user_id=bob.id, conversation_id=conv.id)
    with pytest.raises(NotPermitted):
        await messages.delete_message(
            pool, user_id=bob.id, conversation_id=conv.id, message_id=mine.id
        )
    with pytest.raises(NotPermitted):  # only the sender changes a message
        await messages.update_message(
            pool,
            user_id=bob.id,
            conversation_id=conv.id,
            message_id=mine.id,
            patch=MessagePatch(metadata={"by": "bob"}),
        )
    unchanged = await conversations.get_conversation(
        pool, user_id=alice.id, conversation_id=conv.id
    )
    assert (unchanged.title, unchanged.version, unchanged.message_count) == ("chat", 1, 1)

    # An admin may change the conversation, not delete it; its owner may.
    await pool.execute(
        "UPDATE conversation_members SET role = 'admin'"
        " WHERE conversation_id = $1 AND user_id = $2",
        conv.id,
        bob.id,
    )
    renamed = await conversations.update_conversation(
        pool,
        user_id=bob.id,
        conversation_id=conv.id,
        patch=ConversationPatch(title="renamed", tool_integrity="flag"),
    )
    assert (renamed.title, renamed.tool_integrity) == ("renamed", "flag")
    with pytest.raises(NotPermitted):
        await conversations.delete_conversation(pool, user_id=bob.id, conversation_id=conv.id)
    await conversations.delete_conversation(pool, user_id=alice.id, conversation_id=conv.id)


async def test_the_rights_table_is_what_the_statements_read(
    pool: Any, alice: User, bob: User
) -> None:
    conv = await make_conversation(pool, alice)
    await join(pool, conv, bob)
    await pool.execute(
        "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'append'"
    )
    with pytest.raises(NotPermitted):
        await say(pool, bob, conv, "muted")
    assert await pool.fetchval("SELECT last_seq FROM conversations WHERE id = $1", conv.id) == 0
    await pool.execute("DELETE FROM conversation_rights WHERE role = 'member' AND action = 'read'")
    with pytest.raises(NotFound):
        await messages.list_messages(pool, user_id=bob.id, conversation_id=conv.id)
    assert (await conversations.list_conversations(pool, user_id=bob.id)).items == []


async def test_lists_and_search_cover_conversations_shared_with_the_caller(
    pool: Any, alice: User, bob: User
) -> None:
    shared = await make_conversation(pool, alice, "weather team")
    await conversations.update_conversation(
        pool,
        user_id=alice.id,
        conversation_id=shared.id,
        patch=ConversationPatch(tags=["team"], metadata={"kind": "ops"}),
    )
    private = await make_conversation(pool, alice, "weather diary")
    own = await make_conversation(pool, bob, "bob's own")
    await join(pool, shared, bob)
    await say(pool, alice, shared, "the forecast says rain", metadata={"topic": "rain"})
    await say(pool, alice, private, "the forecast is private", metadata={"topic": "rain"})
    await say(pool, bob, own, "my own forecast", metadata={"topic": "rain"})

    listed = await conversations.list_conversations(pool, user_id=bob.id)
    assert {c.id for c in listed.items} == {shared.id, own.id}
    for filters in ({"q": "forecast"}, {"tags": ["team"]}, {"metadata": {"kind": "ops"}}):
        page = await conversations.list_conversations(pool, user_id=bob.id, **filters)
        assert shared.id in {c.id for c in page.items}, filters
        assert private.id not in {c.id for c in page.items}, filters

    for search in (
        MessageSearch(q="forecast"),
        MessageSearch(role="user"),
        MessageSearch(metadata={"topic": "rain"}),
        MessageSearch(),
    ):
        found = await messages.search_messages(pool, user_id=bob.id, search=search)
        assert {h.conversation_id for h in found.items} == {shared.id, own.id}, search

    await pool.execute(
        "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        shared.id,
        bob.id,
    )
    found = await messages.search_messages(pool, user_id=bob.id, search=MessageSearch(q="forecast"))
    assert {h.conversation_id for h in found.items} == {own.id}
    with pytest.raises(NotFound):
        await conversations.get_conversation(pool, user_id=bob.id, conversation_id=shared.id)


async def test_a_message_that_starts_a_branch_is_held_to_the_limits(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    first = await say(pool, alice, conv, "question")
    await say(pool, alice, conv, "answer")
    with pytest.raises(OverLimit, match="APP_MAX_MESSAGES_PER_CONVERSATION"):
        await branching.append_on_branch(
            pool,
            user_id=alice.id,
            conversation_id=conv.id,
            draft=MessageDraft(role="assistant", parts=text("another answer")),
            parent_id=first.id,
            max_per_conversation=2,
        )
    after = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert (after.message_count, after.leaf_seq) == (2, 2)  # nothing stored, nothing switched
