"""Read state: read and delivery positions, unread counts and lists, receipts, statuses.

Members are added with SQL here (membership is another aggregate's); messages are appended
through the append gateway, except those without a sender (system messages), which ``POST``
writes the way the append statement does (seq = last_seq + 1 under the conversation's row
lock).
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest

from dal.errors import InvalidInput, NotFound, NotPermitted
from dal.gateways import messages, reads
from dal.ids import new_id
from dal.queries import Q
from dal.records.conversations import Conversation
from dal.records.messages import MessageDraft
from dal.records.reads import delivery_status
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user
from tests.dal.test_plans import assert_index_scan, explain

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

ADD_MEMBER = """
INSERT INTO conversation_members (conversation_id, user_id, role, joined_at)
VALUES ($1, $2, $3, coalesce($4, now()))
    ON CONFLICT (conversation_id, user_id) DO NOTHING
"""

POST = """
WITH c AS (
    UPDATE conversations
       SET last_seq = last_seq + 1, message_count = message_count + 1,
           leaf_seq = last_seq + 1, last_message_at = now(), updated_at = now()
     WHERE id = $1
    RETURNING id, last_seq
), m AS (
    INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                          parts_count, metadata_bytes, sender_id, parent_seq)
    SELECT c.id, c.last_seq, $3, 'user',
           jsonb_build_array(jsonb_build_object('type', 'text', 'text', $4::text)), $4,
           mnemo_parts_bytes(jsonb_build_array(jsonb_build_object('type', 'text',
                                                                  'text', $4::text))),
           1, 2, $2, nullif(c.last_seq - 1, 0)
      FROM c
    RETURNING seq
), r AS (
    UPDATE conversation_members AS mm
       SET last_read_seq = greatest(mm.last_read_seq, m.seq),
           delivered_seq = greatest(mm.delivered_seq, m.seq)
      FROM m
     WHERE mm.conversation_id = $1
       AND mm.user_id = $2
)
SELECT seq FROM m
"""

# What an unread count must be: the definition, counted row by row.
RECOUNT = """
SELECT count(*)
  FROM conversation_members AS mm
  JOIN messages AS m ON m.conversation_id = mm.conversation_id
 WHERE mm.conversation_id = $1
   AND mm.user_id = $2
   AND m.seq > mm.last_read_seq
   AND m.active
   AND m.retracted_at IS NULL
   AND m.sender_id IS DISTINCT FROM mm.user_id
"""


async def add_member(
    db: Any, conversation: Conversation, user: User, role: str = "member", *, joined_at: Any = None
) -> None:
    await db.execute(ADD_MEMBER, conversation.id, user.id, role, joined_at)


async def group(db: Any, owner: User, *others: User, title: str = "group") -> Conversation:
    """A conversation of ``owner`` with ``others`` as members."""
    conversation = await make_conversation(db, owner, title)
    await add_member(db, conversation, owner, "owner")
    for other in others:
        await add_member(db, conversation, other)
    return conversation


async def post(db: Any, conversation: Conversation, sender: User | None, text: str = "hi") -> int:
    """Append a message from ``sender`` through the append gateway (which moves the sender's
    positions to it), or one without a sender (a system message) with SQL; its seq."""
    if sender is None:
        seq: int = await db.fetchval(POST, conversation.id, None, new_id(), text)
        return seq
    appended = await messages.insert_message(
        db,
        user_id=sender.id,
        conversation_id=conversation.id,
        draft=MessageDraft(role="user", parts=[{"type": "text", "text": text}]),
    )
    return appended.message.seq


async def message_id(db: Any, conversation: Conversation, seq: int) -> UUID:
    found: UUID = await db.fetchval(
        "SELECT id FROM messages WHERE conversation_id = $1 AND seq = $2", conversation.id, seq
    )
    return found


@pytest.fixture
async def carol(pool: Any) -> User:
    return await make_user(pool, "carol")


# --- positions --------------------------------------------------------------------------


async def test_update_read_state_never_moves_backwards(pool: Any, alice: User, bob: User) -> None:
    chat = await group(pool, alice, bob)
    for _ in range(6):
        await post(pool, chat, alice)
    state = await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=5)
    assert (state.last_read_seq, state.delivered_seq, state.unread) == (5, 5, 1)
    back = await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=2)
    assert (back.last_read_seq, back.delivered_seq, back.unread) == (5, 5, 1)
    stored = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    assert (stored.last_read_seq, stored.delivered_seq, stored.last_seq) == (5, 5, 6)


async def test_update_read_state_without_seq_reads_everything(
    pool: Any, alice: User, bob: User
) -> None:
    chat = await group(pool, alice, bob)
    for _ in range(3):
        await post(pool, chat, alice)
    state = await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    assert (state.last_read_seq, state.delivered_seq, state.unread, state.capped) == (
        3,
        3,
        0,
        False,
    )


async def test_update_read_state_beyond_the_last_seq_is_clamped_to_it(
    pool: Any, alice: User, bob: User
) -> None:
    chat = await group(pool, alice, bob)
    await post(pool, chat, alice)
    await post(pool, chat, alice)
    delivered = await reads.update_read_state(
        pool, user_id=bob.id, conversation_id=chat.id, seq=2**63 - 1, mark_read=False
    )
    assert (delivered.last_read_seq, delivered.delivered_seq, delivered.unread) == (0, 2, 2)
    read = await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=9)
    assert (read.last_read_seq, read.delivered_seq, read.unread) == (2, 2, 0)
    # the next message is unread: the position did not run ahead of it
    await post(pool, chat, alice)
    state = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    assert (state.last_read_seq, state.unread, state.last_seq) == (2, 1, 3)
    with pytest.raises(InvalidInput):
        await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=-1)


async def test_update_read_state_delivered_moves_alone_and_never_below_read(
    pool: Any, alice: User, bob: User
) -> None:
    chat = await group(pool, alice, bob)
    for _ in range(5):
        await post(pool, chat, alice)
    delivered = await reads.update_read_state(
        pool, user_id=bob.id, conversation_id=chat.id, seq=3, mark_read=False
    )
    assert (delivered.last_read_seq, delivered.delivered_seq, delivered.unread) == (0, 3, 5)
    read = await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=4)
    assert (read.last_read_seq, read.delivered_seq) == (4, 4)
    older = await reads.update_read_state(
        pool, user_id=bob.id, conversation_id=chat.id, seq=1, mark_read=False
    )
    assert (older.last_read_seq, older.delivered_seq) == (4, 4)


async def test_own_messages_are_not_unread_and_leave_the_positions(
    pool: Any, alice: User, bob: User
) -> None:
    chat = await group(pool, alice, bob)
    start = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    await post(pool, chat, alice)
    await post(pool, chat, alice)
    await post(pool, chat, bob, "answer")
    state = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    # Bob's answer is not unread for him; alice's two messages are until he marks them read.
    assert (state.last_read_seq, state.delivered_seq) == (
        start.last_read_seq,
        start.delivered_seq,
    )
    assert state.unread == 2
    alice_state = await reads.get_read_state(pool, user_id=alice.id, conversation_id=chat.id)
    assert alice_state.unread == 1  # bob's answer; her own two are not unread


# --- unread -------------------------------------------------------------------------------


async def test_unread_counts_skip_own_inactive_and_retracted_messages(
    pool: Any, alice: User, bob: User
) -> None:
    chat = await group(pool, alice, bob)
    for _ in range(4):
        await post(pool, chat, alice)
    await post(pool, chat, None, "from the agent")  # no sender: unread for everyone
    # bob's own message after his read position is not unread for him
    own = await post(pool, chat, bob)
    await pool.execute(
        "UPDATE messages SET active = false WHERE conversation_id = $1 AND seq = 2", chat.id
    )
    await pool.execute(
        "UPDATE messages SET retracted_at = now() WHERE conversation_id = $1 AND seq = 3",
        chat.id,
    )
    state = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    assert state.unread == 3  # seqs 1, 4 and the agent's 5; not 2, 3 or bob's own
    assert state.last_seq == own
    assert state.unread == await pool.fetchval(RECOUNT, chat.id, bob.id)
    page = await reads.list_unread_messages(pool, user_id=bob.id, conversation_id=chat.id)
    assert [m.seq for m in page.items] == [1, 4, 5]
    assert not page.has_more


async def test_unread_count_stops_at_the_cap(pool: Any, alice: User, bob: User) -> None:
    chat = await group(pool, alice, bob)
    for _ in range(7):
        await post(pool, chat, alice)
    capped = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id, cap=5)
    assert (capped.unread, capped.capped) == (5, True)
    exact = await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id, cap=8)
    assert (exact.unread, exact.capped) == (7, False)
    summary = await reads.list_unread_counts(pool, user_id=bob.id, cap=5)
    assert (summary.total, summary.capped) == (5, True)
    assert [(c.unread, c.capped) for c in summary.items] == [(5, True)]
    # the total stops at its own cap; how many conversations have unread ones stays exact
    other = await group(pool, alice, bob, title="other")
    for _ in range(3):
        await post(pool, other, alice)
    both = await reads.list_unread_counts(pool, user_id=bob.id, cap=8)
    assert (both.total, both.conversations, both.capped) == (10, 2, False)
    stopped = await reads.list_unread_counts(pool, user_id=bob.id, cap=8, total_cap=9)
    assert (stopped.total, stopped.conversations, stopped.capped) == (9, 2, True)
    assert sorted(c.unread for c in stopped.items) == [3, 7]  # the page's counts are whole
    with pytest.raises(InvalidInput):
        await reads.list_unread_counts(pool, user_id=bob.id, cap=8, total_cap=7)
    with pytest.raises(InvalidInput):
        await reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id, cap=0)


async def test_list_unread_counts_totals_pages_and_isolation(
    pool: Any, alice: User, bob: User, carol: User
) -> None:
    chats = [await group(pool, alice, bob, title=f"g{i}") for i in range(5)]
    for i, chat in enumerate(chats):
        for _ in range(i):  # chat i has i unread messages for bob
            await post(pool, chat, alice)
    carols = await group(pool, carol, alice)
    await post(pool, carols, carol)
    summary = await reads.list_unread_counts(pool, user_id=bob.id, limit=2)
    assert (summary.total, summary.conversations, summary.capped) == (10, 4, False)
    seen = {c.conversation_id: c.unread for c in summary.items}
    cursor = summary.next_cursor
    while cursor is not None:
        page = await reads.list_unread_counts(pool, user_id=bob.id, limit=2, cursor=cursor)
        assert page.total == 10
        seen |= {c.conversation_id: c.unread for c in page.items}
        cursor = page.next_cursor
    assert seen == {chat.id: i for i, chat in enumerate(chats) if i}
    assert [*seen] == sorted(seen)  # by conversation id
    # alice wrote everything in her groups and is a member of carol's
    mine = await reads.list_unread_counts(pool, user_id=alice.id)
    assert (mine.total, [c.conversation_id for c in mine.items]) == (1, [carols.id])
    nobody = await make_user(pool, "nobody")
    empty = await reads.list_unread_counts(pool, user_id=nobody.id)
    assert (empty.total, empty.conversations, empty.items, empty.next_cursor) == (0, 0, [], None)
    with pytest.raises(InvalidInput):
        await reads.list_unread_counts(pool, user_id=bob.id, cursor="not-a-cursor")


async def test_list_unread_counts_of_the_conversations_asked_for(
    pool: Any, alice: User, bob: User, carol: User
) -> None:
    chats = [await group(pool, alice, bob, title=f"g{i}") for i in range(3)]
    for i, chat in enumerate(chats):
        for _ in range(i + 1):
            await post(pool, chat, alice)
    carols = await group(pool, carol, alice)
    await post(pool, carols, carol)
    asked = [chats[2].id, carols.id, new_id(), chats[0].id, chats[0].id]
    counts = await reads.list_unread_counts_of(pool, user_id=bob.id, conversation_ids=asked)
    assert [(c.conversation_id, c.unread) for c in counts.items] == sorted(
        [(chats[0].id, 1), (chats[2].id, 3)]
    )
    capped = await reads.list_unread_counts_of(
        pool, user_id=bob.id, conversation_ids=[chats[2].id], cap=2
    )
    assert [(c.unread, c.capped) for c in capped.items] == [(2, True)]
    none = await reads.list_unread_counts_of(pool, user_id=bob.id, conversation_ids=[])
    assert none.items == []
    with pytest.raises(InvalidInput):
        await reads.list_unread_counts_of(
            pool, user_id=bob.id, conversation_ids=[new_id() for _ in range(201)]
        )


async def test_list_unread_messages_pages_by_seq(pool: Any, alice: User, bob: User) -> None:
    chat = await group(pool, alice, bob)
    for i in range(7):
        await post(pool, chat, alice, f"m{i}")
    await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=2)
    first = await reads.list_unread_messages(pool, user_id=bob.id, conversation_id=chat.id, limit=3)
    assert ([m.seq for m in first.items], first.has_more) == ([3, 4, 5], True)
    assert first.items[0].content == "m2"
    rest = await reads.list_unread_messages(
        pool, user_id=bob.id, conversation_id=chat.id, limit=3, after=first.items[-1].seq
    )
    assert ([m.seq for m in rest.items], rest.has_more) == ([6, 7], False)
    # a byte bound ends the page early, but it holds one message
    small = await reads.list_unread_messages(
        pool, user_id=bob.id, conversation_id=chat.id, max_bytes=1
    )
    assert ([m.seq for m in small.items], small.has_more) == ([3], True)
    await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id)
    done = await reads.list_unread_messages(pool, user_id=bob.id, conversation_id=chat.id)
    assert (done.items, done.has_more) == ([], False)


async def test_unread_counts_are_exact_under_concurrent_writers_and_readers(
    pool: Any, alice: User
) -> None:
    """5 writers append while 5 readers mark read (and count) at once; afterwards every
    member's count equals a row-by-row recount, and no reader's position ever went back."""
    readers = [await make_user(pool, f"reader{i}") for i in range(5)]
    writers = [await make_user(pool, f"writer{i}") for i in range(5)]
    chat = await group(pool, alice, *readers, *writers)
    rng = random.Random(10)
    seen: dict[UUID, list[int]] = {r.id: [] for r in readers}

    async def write(writer: User) -> None:
        for i in range(20):
            await post(pool, chat, writer, f"{writer.username} {i}")

    async def read(reader: User) -> None:
        for _ in range(20):
            state = await reads.get_read_state(pool, user_id=reader.id, conversation_id=chat.id)
            target = rng.randint(0, state.last_seq) if state.last_seq else None
            marked = await reads.update_read_state(
                pool, user_id=reader.id, conversation_id=chat.id, seq=target
            )
            assert target is None or marked.last_read_seq >= target
            seen[reader.id].append(marked.last_read_seq)
            await asyncio.sleep(0)

    await asyncio.gather(*(write(w) for w in writers), *(read(r) for r in readers))
    assert await pool.fetchval("SELECT last_seq FROM conversations WHERE id = $1", chat.id) == 100
    for positions in seen.values():
        assert positions == sorted(positions)
    for member in [alice, *readers, *writers]:
        state = await reads.get_read_state(
            pool, user_id=member.id, conversation_id=chat.id, cap=1000
        )
        assert state.unread == await pool.fetchval(RECOUNT, chat.id, member.id)
        assert state.delivered_seq >= state.last_read_seq
    summary = await reads.list_unread_counts(pool, user_id=alice.id, cap=1000)
    assert summary.total == 100  # alice wrote nothing and read nothing


# --- receipts and statuses ----------------------------------------------------------------


async def test_receipts_and_status_move_from_sent_to_delivered_to_read(
    pool: Any, alice: User, bob: User, carol: User
) -> None:
    chat = await group(pool, alice, bob, carol)
    seq = await post(pool, chat, alice)
    mid = await message_id(pool, chat, seq)

    async def receipts() -> Any:
        return await reads.list_message_receipts(
            pool, user_id=bob.id, conversation_id=chat.id, message_id=mid
        )

    sent = await receipts()
    assert (sent.status, sent.recipients, sent.read_count, sent.delivered_count) == (
        "sent",
        2,
        0,
        0,
    )
    assert {r.user_id for r in sent.items} == {bob.id, carol.id}  # not the sender
    await reads.update_read_state(
        pool, user_id=bob.id, conversation_id=chat.id, seq=seq, mark_read=False
    )
    assert (await receipts()).status == "sent"
    await reads.update_read_state(
        pool, user_id=carol.id, conversation_id=chat.id, seq=seq, mark_read=False
    )
    delivered = await receipts()
    assert (delivered.status, delivered.delivered_count, delivered.read_count) == (
        "delivered",
        2,
        0,
    )
    await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=seq)
    partly = await receipts()
    assert (partly.status, partly.read_count) == ("delivered", 1)
    assert {r.user_id: r.read for r in partly.items} == {bob.id: True, carol.id: False}
    await reads.update_read_state(pool, user_id=carol.id, conversation_id=chat.id)
    assert (await receipts()).status == "read"
    statuses = await reads.list_message_deliveries(pool, user_id=carol.id, conversation_id=chat.id)
    assert [(s.seq, s.status, s.read_count) for s in statuses.items] == [(seq, "read", 2)]


async def test_receipts_leave_out_members_who_joined_later_and_page(
    pool: Any, alice: User, bob: User, carol: User
) -> None:
    chat = await group(pool, alice, bob)
    seq = await post(pool, chat, alice)
    await pool.execute(
        "UPDATE messages SET created_at = now() - interval '1 hour' WHERE conversation_id = $1",
        chat.id,
    )
    await pool.execute(
        "UPDATE conversation_members SET joined_at = now() - interval '2 hours' "
        "WHERE conversation_id = $1",
        chat.id,
    )
    await add_member(pool, chat, carol)  # joined now, after the message
    early = [await make_user(pool, f"early{i}") for i in range(3)]
    for user in early:
        await add_member(pool, chat, user, joined_at=datetime.now().astimezone() - timedelta(1))
    mid = await message_id(pool, chat, seq)
    first = await reads.list_message_receipts(
        pool, user_id=carol.id, conversation_id=chat.id, message_id=mid, limit=2
    )
    expected = sorted([bob.id, *(u.id for u in early)])
    assert first.recipients == 4
    assert [r.user_id for r in first.items] == expected[:2]
    assert first.next_cursor is not None
    rest = await reads.list_message_receipts(
        pool,
        user_id=carol.id,
        conversation_id=chat.id,
        message_id=mid,
        limit=2,
        cursor=first.next_cursor,
    )
    assert [r.user_id for r in rest.items] == expected[2:]
    assert rest.next_cursor is None
    with pytest.raises(NotFound):
        await reads.list_message_receipts(
            pool, user_id=bob.id, conversation_id=chat.id, message_id=new_id()
        )


async def test_message_deliveries_batch_agrees_with_receipts(
    pool: Any, alice: User, bob: User, carol: User
) -> None:
    chat = await group(pool, alice, bob, carol)
    seqs = [await post(pool, chat, sender) for sender in (alice, bob, None, alice, alice)]
    await reads.update_read_state(pool, user_id=alice.id, conversation_id=chat.id, seq=5)
    await reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id, seq=3)
    await reads.update_read_state(
        pool, user_id=carol.id, conversation_id=chat.id, seq=4, mark_read=False
    )
    page = await reads.list_message_deliveries(
        pool, user_id=alice.id, conversation_id=chat.id, limit=3
    )
    assert ([s.seq for s in page.items], page.has_more) == (seqs[:3], True)
    rest = await reads.list_message_deliveries(
        pool, user_id=alice.id, conversation_id=chat.id, after=3
    )
    for status in [*page.items, *rest.items]:
        receipts = await reads.list_message_receipts(
            pool, user_id=alice.id, conversation_id=chat.id, message_id=status.id
        )
        assert (status.status, status.recipients, status.read_count) == (
            receipts.status,
            receipts.recipients,
            receipts.read_count,
        )
    by_seq = {s.seq: s.status for s in [*page.items, *rest.items]}
    # 1, 2, 3: every recipient read it but carol, who has it; 4, 5: bob has not got it
    assert by_seq == {1: "delivered", 2: "delivered", 3: "delivered", 4: "sent", 5: "sent"}


def test_delivery_status_of_no_recipient_is_sent() -> None:
    assert delivery_status(0, 0, 0) == "sent"
    assert delivery_status(2, 2, 2) == "read"
    assert delivery_status(2, 1, 2) == "delivered"
    assert delivery_status(2, 1, 1) == "sent"


# --- scoping ------------------------------------------------------------------------------


async def test_non_members_and_former_members_get_not_found(
    pool: Any, alice: User, bob: User, carol: User
) -> None:
    chat = await group(pool, alice, bob)
    seq = await post(pool, chat, alice)
    mid = await message_id(pool, chat, seq)
    await pool.execute(
        "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        chat.id,
        bob.id,
    )
    for user in (carol, bob):
        for call in (
            reads.get_read_state(pool, user_id=user.id, conversation_id=chat.id),
            reads.update_read_state(pool, user_id=user.id, conversation_id=chat.id),
            reads.list_unread_messages(pool, user_id=user.id, conversation_id=chat.id),
            reads.list_message_receipts(
                pool, user_id=user.id, conversation_id=chat.id, message_id=mid
            ),
            reads.list_message_deliveries(pool, user_id=user.id, conversation_id=chat.id),
        ):
            with pytest.raises(NotFound):
                await call
        assert (await reads.list_unread_counts(pool, user_id=user.id)).total == 0


async def test_a_role_without_the_read_right_is_not_permitted_and_changes_nothing(
    pool: Any, alice: User, bob: User
) -> None:
    chat = await group(pool, alice, bob)
    seq = await post(pool, chat, alice)
    mid = await message_id(pool, chat, seq)
    # this test's own database: take the right away from plain members
    await pool.execute("DELETE FROM conversation_rights WHERE role = 'member' AND action = 'read'")
    for call in (
        reads.get_read_state(pool, user_id=bob.id, conversation_id=chat.id),
        reads.update_read_state(pool, user_id=bob.id, conversation_id=chat.id),
        reads.list_unread_messages(pool, user_id=bob.id, conversation_id=chat.id),
        reads.list_message_receipts(pool, user_id=bob.id, conversation_id=chat.id, message_id=mid),
        reads.list_message_deliveries(pool, user_id=bob.id, conversation_id=chat.id),
    ):
        with pytest.raises(NotPermitted):
            await call
    assert (await reads.list_unread_counts(pool, user_id=bob.id)).items == []
    positions = await pool.fetchrow(
        "SELECT last_read_seq, delivered_seq FROM conversation_members "
        "WHERE conversation_id = $1 AND user_id = $2",
        chat.id,
        bob.id,
    )
    assert tuple(positions) == (0, 0)


# --- plans --------------------------------------------------------------------------------


@pytest.fixture
async def seeded(pool: Any) -> tuple[User, list[Conversation]]:
    """bob in 300 conversations of 40 messages each (one branch, written one after another, as
    appends leave them: PostgreSQL 18's skip scan would otherwise find messages_user_created_idx
    cheap over rows that all share one created_at), read halfway, with 20 other members each,
    ANALYZEd."""
    alice = await make_user(pool, "alice")
    bob = await make_user(pool, "bob")
    chats = [await group(pool, alice, bob, title=f"g{i}") for i in range(300)]
    ids = [c.id for c in chats]
    await pool.execute(
        """
        INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                              parts_count, metadata_bytes, sender_id, parent_seq, created_at)
        SELECT c, s, gen_random_uuid(), 'user', '[{"type": "text", "text": "x"}]', 'x', 29, 1,
               2, $2, nullif(s - 1, 0), clock_timestamp()
          FROM unnest($1::uuid[]) AS c, generate_series(1, 40) AS s
        """,
        ids,
        alice.id,
    )
    await pool.execute("UPDATE conversations SET last_seq = 40 WHERE id = ANY($1::uuid[])", ids)
    await pool.execute(
        "UPDATE conversation_members SET last_read_seq = 20 WHERE user_id = $1", bob.id
    )
    # other members of the same conversations: bob's memberships are a small part of them
    await pool.execute(
        "INSERT INTO users (id, username) SELECT gen_random_uuid(), 'other' || i"
        "  FROM generate_series(1, 20) AS i"
    )
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " SELECT c, u.id, 'member' FROM unnest($1::uuid[]) AS c, users AS u"
        " WHERE u.username LIKE 'other%'",
        ids,
    )
    await pool.execute("VACUUM ANALYZE messages")
    await pool.execute("VACUUM ANALYZE conversation_members")
    return bob, chats


UNREAD_INDEXES = {"messages_unread_idx", "messages_active_idx"}


def assert_unread_range(nodes: list[dict[str, Any]]) -> None:
    """The messages are read by a partial index of the active branch, as a range from the read
    position (an index condition, not a filter over the conversation), never sequentially."""
    ranges = [n.get("Index Cond", "") for n in nodes if n.get("Index Name") in UNREAD_INDEXES]
    assert ranges and all("seq >" in cond for cond in ranges), [
        (n.get("Node Type"), n.get("Index Name"), n.get("Index Cond")) for n in nodes
    ]
    assert not any(
        n.get("Node Type") == "Seq Scan" and n.get("Relation Name") == "messages" for n in nodes
    )


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_unread_queries_use_their_indexes(
    settings: Settings, seeded: tuple[User, list[Conversation]], generic: bool
) -> None:
    bob, chats = seeded
    # a plain connection (no json codec): EXPLAIN's JSON stays text for explain()
    conn = await asyncpg.connect(settings.database_url)
    try:
        counts = await explain(
            conn, Q["list_unread_counts"], bob.id, UUID(int=0), 100, 51, 1000, generic=generic
        )
        assert_index_scan(counts, "conversation_members_user_idx", "conversation_members")
        assert_unread_range(counts)
        # a range from the read position (an index condition), not a filter on the whole
        # conversation (index-only when the visibility map allows)
        some = await explain(
            conn,
            Q["list_unread_counts_of"],
            bob.id,
            # a literal in EXECUTE (generic), a list for asyncpg (custom)
            "{" + ",".join(str(c.id) for c in chats[:50]) + "}"
            if generic
            else [c.id for c in chats[:50]],
            100,
            generic=generic,
        )
        assert_unread_range(some)
        assert not any(
            n.get("Node Type") == "Seq Scan" and n.get("Relation Name") == "conversation_members"
            for n in some
        )
        one = await explain(conn, Q["get_read_state"], bob.id, chats[0].id, 100, generic=generic)
        assert_unread_range(one)
        listed = await explain(
            conn, Q["list_unread_messages"], bob.id, chats[0].id, 0, 51, 4 << 20, generic=generic
        )
        assert_unread_range(listed)
        marked = await explain(
            conn, Q["update_read_state"], bob.id, chats[0].id, 100, 30, True, generic=generic
        )
        # the caller's member row: by either index that leads with its key
        member_scans = {
            n.get("Index Name")
            for n in marked
            if n.get("Relation Name") == "conversation_members" and "Scan" in n["Node Type"]
        }
        assert member_scans and member_scans <= {
            "conversation_members_pkey",
            "conversation_members_user_idx",
        }, member_scans
        assert_unread_range(marked)
        message = await conn.fetchval(
            "SELECT id FROM messages WHERE conversation_id = $1 AND seq = 30", chats[0].id
        )
        receipts = await explain(
            conn,
            Q["list_message_receipts"],
            bob.id,
            chats[0].id,
            message,
            UUID(int=0),
            51,
            generic=generic,
        )
        assert_index_scan(receipts, "messages_conversation_id_id_key", "messages")
        deliveries = await explain(
            conn, Q["list_message_deliveries"], bob.id, chats[0].id, 20, 51, generic=generic
        )
        assert_index_scan(deliveries, "messages_pkey", "messages")
        for nodes in (receipts, deliveries):
            assert not any(
                n.get("Node Type") == "Seq Scan"
                and n.get("Relation Name") == "conversation_members"
                for n in nodes
            )
    finally:
        await conn.close()
    for name in (
        "list_unread_counts",
        "get_read_state",
        "list_unread_counts_of",
        "list_unread_messages",
    ):
        assert UNREAD_INDEXES <= set(Q[name].uses)


# --- session state ------------------------------------------------------------------------


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Read state, for tests/test_session_state.py."""
    owner = await run.one("make_user", lambda: make_user(pool))
    other = await run.one("make_user", lambda: make_user(pool))
    chat = await run.one("group", lambda: group(pool, owner, other))
    seq = await run.one("post", lambda: post(pool, chat, owner))
    mid = await message_id(pool, chat, seq)
    uid, cid = other.id, chat.id
    await run(
        [
            (
                "get_read_state",
                lambda: reads.get_read_state(pool, user_id=uid, conversation_id=cid),
            ),
            (
                "update_read_state delivered",
                lambda: reads.update_read_state(
                    pool, user_id=uid, conversation_id=cid, seq=seq, mark_read=False
                ),
            ),
            (
                "update_read_state",
                lambda: reads.update_read_state(pool, user_id=uid, conversation_id=cid),
            ),
            (
                "update_read_state negative",
                lambda: reads.update_read_state(pool, user_id=uid, conversation_id=cid, seq=-1),
            ),
            ("list_unread_counts", lambda: reads.list_unread_counts(pool, user_id=uid)),
            (
                "list_unread_counts_of",
                lambda: reads.list_unread_counts_of(pool, user_id=uid, conversation_ids=[cid]),
            ),
            (
                "list_unread_messages",
                lambda: reads.list_unread_messages(pool, user_id=uid, conversation_id=cid),
            ),
            (
                "list_message_receipts",
                lambda: reads.list_message_receipts(
                    pool, user_id=uid, conversation_id=cid, message_id=mid
                ),
            ),
            (
                "list_message_deliveries",
                lambda: reads.list_message_deliveries(pool, user_id=uid, conversation_id=cid),
            ),
            (
                "get_read_state non-member",
                lambda: reads.get_read_state(pool, user_id=new_id(), conversation_id=cid),
            ),
        ]
    )
