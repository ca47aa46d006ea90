"""Branches: edits and regenerations as siblings, switching the active branch, reading any
branch, and the active messages staying exactly one path under concurrent appends and
switches."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from dal.errors import NotFound, NotPermitted
from dal.gateways import branches, messages
from dal.records.conversations import Conversation
from dal.records.messages import Message, MessageDraft
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import branches as branching
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


def draft(text: str, role: str = "user", **fields: Any) -> MessageDraft:
    return MessageDraft(role=role, parts=[{"type": "text", "text": text}], **fields)  # type: ignore[arg-type]


async def members(pool: Any, conv: Conversation, *users: User, role: str = "member") -> None:
    """The conversation's owner as its owner member (if the conversation gateway has not
    made it), and ``users`` as members with ``role``."""
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " SELECT id, user_id, 'owner' FROM conversations WHERE id = $1 ON CONFLICT DO NOTHING",
        conv.id,
    )
    for user in users:
        await pool.execute(
            "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)",
            conv.id,
            user.id,
            role,
        )


@pytest.fixture
async def chat(pool: Any, alice: User) -> Conversation:
    conv = await make_conversation(pool, alice)
    await members(pool, conv)
    return conv


async def say(
    pool: Any, user: User, conv: Conversation, text: str, role: str = "user", **kw: Any
) -> Message:
    """Append after the active leaf."""
    appended = await messages.insert_message(
        pool, user_id=user.id, conversation_id=conv.id, draft=draft(text, role)
    )
    return appended.message


async def fork(
    pool: Any, user: User, conv: Conversation, parent: Message | None, text: str, role: str
) -> Message:
    """Append after ``parent`` (a new first message when None): a new branch."""
    appended = await branching.append_on_branch(
        pool,
        user_id=user.id,
        conversation_id=conv.id,
        draft=draft(text, role),
        parent_id=parent.id if parent else None,
    )
    return appended.message


async def active_texts(pool: Any, user: User, conv: Conversation) -> list[str]:
    page = await messages.list_messages(pool, user_id=user.id, conversation_id=conv.id, limit=200)
    return [m.content for m in page.items]


async def assert_one_path(pool: Any, conversation_id: UUID) -> list[int]:
    """The active messages are exactly the path from the leaf up to a first message (and
    seq has no gaps); returns that path's seqs."""
    walked = await pool.fetchval(
        """
        WITH RECURSIVE w AS (
            SELECT m.seq, m.parent_seq FROM messages AS m JOIN conversations AS c
                ON c.id = m.conversation_id AND m.seq = c.leaf_seq WHERE c.id = $1
            UNION ALL
            SELECT m.seq, m.parent_seq FROM w JOIN messages AS m
                ON m.conversation_id = $1 AND m.seq = w.parent_seq)
        SELECT coalesce(array_agg(seq ORDER BY seq), '{}') FROM w
        """,
        conversation_id,
    )
    active = await pool.fetchval(
        "SELECT coalesce(array_agg(seq ORDER BY seq), '{}') FROM messages"
        " WHERE conversation_id = $1 AND active",
        conversation_id,
    )
    assert list(active) == list(walked)
    if walked:
        root = await pool.fetchval(
            "SELECT parent_seq FROM messages WHERE conversation_id = $1 AND seq = $2",
            conversation_id,
            walked[0],
        )
        assert root is None
    seqs = await pool.fetch(
        "SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq", conversation_id
    )
    assert [r["seq"] for r in seqs] == list(range(1, len(seqs) + 1))
    return list(walked)


async def test_edit_makes_a_sibling_and_keeps_the_old_branch(
    pool: Any, alice: User, chat: Conversation
) -> None:
    q1 = await say(pool, alice, chat, "q1")
    a1 = await say(pool, alice, chat, "a1", "assistant")
    q2 = await say(pool, alice, chat, "q2")
    a2 = await say(pool, alice, chat, "a2", "assistant")
    # Editing q2: a sibling of q2 (same parent a1); q2 and a2 leave the active branch.
    q2b = await fork(pool, alice, chat, a1, "q2 edited", "user")
    assert (q2b.seq, q2b.parent_seq) == (5, a1.seq)
    assert await active_texts(pool, alice, chat) == ["q1", "a1", "q2 edited"]
    siblings = await branches.list_message_siblings(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=q2.id
    )
    assert [m.id for m in siblings.items] == [q2.id, q2b.id]
    assert (siblings.active_id, siblings.has_more) == (q2b.id, False)
    # The old branch stays readable, by its leaf.
    old = await branches.list_branch_messages(
        pool, user_id=alice.id, conversation_id=chat.id, leaf_id=a2.id
    )
    assert [m.id for m in old.items] == [q1.id, a1.id, q2.id, a2.id]
    assert not old.has_more
    await assert_one_path(pool, chat.id)


async def test_regenerate_makes_a_sibling_of_the_answer(
    pool: Any, alice: User, chat: Conversation
) -> None:
    q1 = await say(pool, alice, chat, "q1")
    a1 = await say(pool, alice, chat, "a1", "assistant")
    a1b = await fork(pool, alice, chat, q1, "a1 again", "assistant")
    a1c = await fork(pool, alice, chat, q1, "a1 third", "assistant")
    assert await active_texts(pool, alice, chat) == ["q1", "a1 third"]
    siblings = await branches.list_message_siblings(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=a1b.id
    )
    assert [m.id for m in siblings.items] == [a1.id, a1b.id, a1c.id]
    assert siblings.active_id == a1c.id
    # The conversation goes on after the regenerated answer.
    q2 = await say(pool, alice, chat, "q2")
    assert q2.parent_seq == a1c.seq
    assert await assert_one_path(pool, chat.id) == [q1.seq, a1c.seq, q2.seq]


async def test_edit_of_the_first_message_is_a_new_first_message(
    pool: Any, alice: User, chat: Conversation
) -> None:
    q1 = await say(pool, alice, chat, "q1")
    await say(pool, alice, chat, "a1", "assistant")
    q1b = await fork(pool, alice, chat, None, "q1 edited", "user")
    assert q1b.parent_seq is None
    assert await active_texts(pool, alice, chat) == ["q1 edited"]
    siblings = await branches.list_message_siblings(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=q1.id
    )
    assert [m.id for m in siblings.items] == [q1.id, q1b.id]
    await assert_one_path(pool, chat.id)


async def test_switch_back_and_forth(pool: Any, alice: User, chat: Conversation) -> None:
    q1 = await say(pool, alice, chat, "q1")
    a1 = await say(pool, alice, chat, "a1", "assistant")
    q2 = await say(pool, alice, chat, "q2")
    a2 = await say(pool, alice, chat, "a2", "assistant")
    q2b = await fork(pool, alice, chat, a1, "q2b", "user")
    a2b = await say(pool, alice, chat, "a2b", "assistant")

    async def switch(message: Message | None, descend: bool = True) -> Any:
        return await branching.switch_branch(
            pool,
            user_id=alice.id,
            conversation_id=chat.id,
            message_id=message.id if message else None,
            descend=descend,
        )

    # Activating the old sibling q2 follows its branch down to its leaf a2.
    switched = await switch(q2)
    assert (switched.leaf_seq, switched.fork_seq) == (a2.seq, a1.seq)
    assert (switched.activated, switched.deactivated) == (2, 2)
    assert await active_texts(pool, alice, chat) == ["q1", "a1", "q2", "a2"]
    await assert_one_path(pool, chat.id)
    # ...and back.
    switched = await switch(q2b)
    assert switched.leaf_seq == a2b.seq
    assert await active_texts(pool, alice, chat) == ["q1", "a1", "q2b", "a2b"]
    # Without descending, the branch ends at the message: the next append follows it.
    switched = await switch(q2, descend=False)
    assert (switched.leaf_seq, switched.activated, switched.deactivated) == (q2.seq, 1, 2)
    a2c = await say(pool, alice, chat, "a2c", "assistant")
    assert a2c.parent_seq == q2.seq
    # Descending leads to the newest message below: a2c (under q2, older than q2b).
    await switch(q1)
    assert await active_texts(pool, alice, chat) == ["q1", "a1", "q2", "a2c"]
    # A message on the active branch, not descending: the branch is cut after it.
    await switch(a1, descend=False)
    assert await active_texts(pool, alice, chat) == ["q1", "a1"]
    # The empty path: nothing active; the next append is a new first message.
    await switch(None)
    assert await active_texts(pool, alice, chat) == []
    first = await say(pool, alice, chat, "q1 again")
    assert first.parent_seq is None
    assert await assert_one_path(pool, chat.id) == [first.seq]
    # Switching to the message that is already the leaf changes nothing.
    switched = await switch(first)
    assert (switched.activated, switched.deactivated) == (0, 0)


async def test_pages_follow_the_active_branch_both_ways_after_switches(
    pool: Any, alice: User, chat: Conversation
) -> None:
    # 40 messages on the trunk; branches of 5 forking every 10 messages, interleaved.
    trunk = [await say(pool, alice, chat, f"t{i}") for i in range(1, 41)]
    leaves = []
    for fork_at in (10, 20, 30):
        first = await fork(pool, alice, chat, trunk[fork_at - 1], f"b{fork_at}.1", "user")
        for k in range(2, 6):
            last = await say(pool, alice, chat, f"b{fork_at}.{k}")
        leaves.append((first, last))
        # back to the trunk's end
        await branching.switch_branch(
            pool, user_id=alice.id, conversation_id=chat.id, message_id=trunk[-1].id
        )
        await say(pool, alice, chat, f"t+{fork_at}")
    # The branch forked at 20 made active: t1..t20, b20.1..b20.5.
    await branching.switch_branch(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=leaves[1][0].id
    )
    expected = [f"t{i}" for i in range(1, 21)] + [f"b20.{k}" for k in range(1, 6)]
    path = await assert_one_path(pool, chat.id)
    assert len(path) == 25
    # Backward from the newest page, 7 at a time.
    seen: list[str] = []
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=chat.id, limit=7)
    while True:
        seen[:0] = [m.content for m in page.items]
        if not page.has_more:
            break
        page = await messages.list_messages(
            pool, user_id=alice.id, conversation_id=chat.id, limit=7, before=page.items[0].seq
        )
    assert seen == expected
    # Forward from the start.
    seen = []
    after = 0
    while True:
        page = await messages.list_messages(
            pool, user_id=alice.id, conversation_id=chat.id, limit=7, after=after
        )
        seen += [m.content for m in page.items]
        if not page.has_more:
            break
        after = page.items[-1].seq
    assert seen == expected
    # The same branch read by its leaf, backward in pages: the same messages.
    seen = []
    before: int | None = None
    while True:
        page = await branches.list_branch_messages(
            pool,
            user_id=alice.id,
            conversation_id=chat.id,
            leaf_id=leaves[1][1].id,
            limit=7,
            before=before,
        )
        seen[:0] = [m.content for m in page.items]
        if not page.has_more:
            break
        before = page.items[0].seq
    assert seen == expected


async def test_branch_page_ends_at_its_bytes(pool: Any, alice: User, chat: Conversation) -> None:
    for i in range(6):
        leaf = await say(pool, alice, chat, f"{i}" * 1000)
    page = await branches.list_branch_messages(
        pool, user_id=alice.id, conversation_id=chat.id, leaf_id=leaf.id, max_bytes=4500
    )
    assert [m.seq for m in page.items] == [5, 6] and page.has_more
    # Below the first message: an empty page.
    first = await branches.list_branch_messages(
        pool, user_id=alice.id, conversation_id=chat.id, leaf_id=leaf.id, before=1
    )
    assert (first.items, first.has_more) == ([], False)


async def test_siblings_page(pool: Any, alice: User, chat: Conversation) -> None:
    q1 = await say(pool, alice, chat, "q1")
    answers = [await fork(pool, alice, chat, q1, f"a{i}", "assistant") for i in range(5)]
    page = await branches.list_message_siblings(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=answers[0].id, limit=3
    )
    assert [m.id for m in page.items] == [a.id for a in answers[:3]]
    assert (page.has_more, page.active_id) == (True, None)
    page = await branches.list_message_siblings(
        pool,
        user_id=alice.id,
        conversation_id=chat.id,
        message_id=answers[0].id,
        limit=3,
        after=page.items[-1].seq,
    )
    assert [m.id for m in page.items] == [a.id for a in answers[3:]]
    assert (page.has_more, page.active_id) == (False, answers[-1].id)
    page = await branches.list_message_siblings(
        pool,
        user_id=alice.id,
        conversation_id=chat.id,
        message_id=answers[0].id,
        after=answers[-1].seq,
    )
    assert (page.items, page.has_more, page.active_id) == ([], False, None)


async def test_retried_fork_changes_nothing(pool: Any, alice: User, chat: Conversation) -> None:
    q1 = await say(pool, alice, chat, "q1")
    a1 = await say(pool, alice, chat, "a1", "assistant")
    again = draft("a1 again", "assistant", id=UUID(int=7 << 76 | 1))
    first = await branching.append_on_branch(
        pool, user_id=alice.id, conversation_id=chat.id, draft=again, parent_id=q1.id
    )
    q2 = await say(pool, alice, chat, "q2")
    retry = await branching.append_on_branch(
        pool, user_id=alice.id, conversation_id=chat.id, draft=again, parent_id=q1.id
    )
    assert (first.created, retry.created) == (True, False)
    assert retry.message.id == first.message.id
    assert await assert_one_path(pool, chat.id) == [q1.seq, first.message.seq, q2.seq]
    assert a1.seq == 2


async def test_outsiders_find_nothing(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    q1 = await say(pool, alice, chat, "q1")
    await say(pool, alice, chat, "a1", "assistant")
    ids = {"user_id": bob.id, "conversation_id": chat.id}
    with pytest.raises(NotFound):
        await branching.switch_branch(pool, **ids, message_id=q1.id)
    with pytest.raises(NotFound):
        await branching.append_on_branch(
            pool, **ids, draft=draft("hijack", "user"), parent_id=q1.id
        )
    with pytest.raises(NotFound):
        await branches.list_message_siblings(pool, **ids, message_id=q1.id)
    with pytest.raises(NotFound):
        await branches.list_branch_messages(pool, **ids, leaf_id=q1.id)
    # A message of another conversation is not found in this one.
    other = await make_conversation(pool, bob)
    await members(pool, other)
    theirs = await say(pool, bob, other, "theirs")
    mine = {"user_id": alice.id, "conversation_id": chat.id}
    with pytest.raises(NotFound):
        await branching.switch_branch(pool, **mine, message_id=theirs.id)
    with pytest.raises(NotFound):
        await branches.list_message_siblings(pool, **mine, message_id=theirs.id)
    with pytest.raises(NotFound):
        await branches.list_branch_messages(pool, **mine, leaf_id=theirs.id)
    assert await assert_one_path(pool, chat.id) == [1, 2]


async def test_a_member_switches_and_a_role_without_the_right_cannot(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    await members(pool, chat, bob)
    q1 = await say(pool, alice, chat, "q1")
    a1 = await say(pool, alice, chat, "a1", "assistant")
    a1b = await fork(pool, bob, chat, q1, "a1b", "assistant")  # any member may
    await branching.switch_branch(pool, user_id=bob.id, conversation_id=chat.id, message_id=a1.id)
    await pool.execute(
        "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'switch_branch'"
    )
    ids = {"user_id": bob.id, "conversation_id": chat.id}
    with pytest.raises(NotPermitted):
        await branching.switch_branch(pool, **ids, message_id=a1b.id)
    with pytest.raises(NotPermitted):
        await branching.append_on_branch(
            pool, **ids, draft=draft("x", "assistant"), parent_id=q1.id
        )
    with pytest.raises(NotPermitted):  # the statement alone refuses too
        await branches.update_active_leaf(pool, **ids, message_id=a1b.id)
    assert await assert_one_path(pool, chat.id) == [q1.seq, a1.seq]
    # Reading branches needs only 'read'.
    siblings = await branches.list_message_siblings(pool, **ids, message_id=a1.id)
    assert siblings.active_id == a1.id


async def test_concurrent_appends_and_switches_keep_one_path(
    pool: Any, alice: User, chat: Conversation
) -> None:
    seeded = [await say(pool, alice, chat, f"m{i}") for i in range(10)]
    known: list[Message] = list(seeded)
    rng = random.Random(10)

    async def worker(n: int) -> None:
        for k in range(8):
            action = rng.random()
            if action < 0.4:
                known.append(await say(pool, alice, chat, f"w{n}.{k}"))
            elif action < 0.7:
                parent = rng.choice(known)
                known.append(await fork(pool, alice, chat, parent, f"f{n}.{k}", "assistant"))
            else:
                await branching.switch_branch(
                    pool,
                    user_id=alice.id,
                    conversation_id=chat.id,
                    message_id=rng.choice(known).id,
                    descend=rng.random() < 0.5,
                )

    await asyncio.gather(*(worker(n) for n in range(8)))
    path = await assert_one_path(pool, chat.id)
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=chat.id, limit=200)
    assert [m.seq for m in page.items] == path
    leaf = await pool.fetchval("SELECT leaf_seq FROM conversations WHERE id = $1", chat.id)
    assert path[-1] == leaf


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Branches, for tests/test_session_state.py: every gateway and use case, successes and
    failures (a missing message, a transaction rolled back by a refused append)."""
    user = await run.one("make_user", lambda: make_user(pool))
    conv = await run.one("make_conversation", lambda: make_conversation(pool, user))
    await run.one("members", lambda: members(pool, conv))
    uid, cid = user.id, conv.id
    q1 = await run.one("say", lambda: say(pool, user, conv, "q1"))
    a1 = await run.one("say", lambda: say(pool, user, conv, "a1", "assistant"))
    missing = UUID(int=1)
    await run(
        [
            (
                "append_on_branch",
                lambda: branching.append_on_branch(
                    pool, user_id=uid, conversation_id=cid, draft=draft("b"), parent_id=q1.id
                ),
            ),
            (
                "append_on_branch too large",
                lambda: branching.append_on_branch(
                    pool,
                    user_id=uid,
                    conversation_id=cid,
                    draft=draft("b" * 100),
                    parent_id=q1.id,
                    max_bytes=10,
                ),
            ),
            (
                "switch_branch",
                lambda: branching.switch_branch(
                    pool, user_id=uid, conversation_id=cid, message_id=a1.id
                ),
            ),
            (
                "switch_branch missing",
                lambda: branching.switch_branch(
                    pool, user_id=uid, conversation_id=cid, message_id=missing
                ),
            ),
            (
                "get_branch_lock",
                lambda: branches.get_branch_lock(
                    pool, user_id=uid, conversation_id=cid, message_id=q1.id
                ),
            ),
            (
                "update_active_leaf",
                lambda: branches.update_active_leaf(
                    pool, user_id=uid, conversation_id=cid, message_id=a1.id
                ),
            ),
            (
                "list_message_siblings",
                lambda: branches.list_message_siblings(
                    pool, user_id=uid, conversation_id=cid, message_id=a1.id
                ),
            ),
            (
                "list_message_siblings missing",
                lambda: branches.list_message_siblings(
                    pool, user_id=uid, conversation_id=cid, message_id=missing
                ),
            ),
            (
                "list_branch_messages",
                lambda: branches.list_branch_messages(
                    pool, user_id=uid, conversation_id=cid, leaf_id=a1.id, limit=1
                ),
            ),
            (
                "list_branch_messages missing",
                lambda: branches.list_branch_messages(
                    pool, user_id=uid, conversation_id=cid, leaf_id=missing
                ),
            ),
        ]
    )
