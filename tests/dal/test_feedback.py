"""Gateways of feedback on messages: set, change, withdraw, read; counters exact under
concurrency; bounds; scoping by membership (404) and rights read from SQL (403)."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest
from pydantic import ValidationError

from dal.errors import Conflict, InvalidInput, NotFound, NotPermitted
from dal.gateways import conversations, feedback, messages
from dal.queries import Q
from dal.records.conversations import Conversation, ConversationDraft
from dal.records.feedback import FeedbackDraft
from dal.records.messages import Message, MessageDraft
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user
from tests.dal.test_messages import wait_until_waiting_for_a_lock
from tests.dal.test_plans import assert_index_scan, explain

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


async def add_member(db: Any, conversation: Conversation, user: User, role: str = "member") -> None:
    """Make ``user`` a member with ``role`` (ad-hoc SQL, the test's own doing, until the members
    gateway lands)."""
    await db.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (conversation_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        conversation.id,
        user.id,
        role,
    )


async def shared(db: Any, owner: User, *members: User) -> Conversation:
    """A conversation of ``owner`` (its owner member) with ``members`` as members."""
    conversation = await make_conversation(db, owner)
    for member in members:
        await add_member(db, conversation, member)
    return conversation


async def post(db: Any, owner: User, conversation: Conversation, text: str = "hi") -> Message:
    appended = await messages.insert_message(
        db,
        user_id=owner.id,
        conversation_id=conversation.id,
        draft=MessageDraft(role="assistant", parts=[{"type": "text", "text": text}]),
    )
    return appended.message


async def counts(db: Any, message: Message) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT feedback_up, feedback_down FROM messages WHERE conversation_id = $1 AND seq = $2",
        message.conversation_id,
        message.seq,
    )
    return row["feedback_up"], row["feedback_down"]


async def counted(db: Any, message: Message) -> tuple[int, int]:
    """The counts the message's feedback rows give (what the counters must say)."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE rating = 'up') AS up,"
        " count(*) FILTER (WHERE rating = 'down') AS down"
        " FROM message_feedback WHERE conversation_id = $1 AND seq = $2",
        message.conversation_id,
        message.seq,
    )
    return row["up"], row["down"]


def on(user: User, message: Message) -> dict[str, UUID]:
    return {
        "user_id": user.id,
        "conversation_id": message.conversation_id,
        "message_id": message.id,
    }


async def rate(db: Any, user: User, message: Message, rating: str, **fields: Any) -> Any:
    draft = FeedbackDraft.model_validate({"rating": rating, **fields})
    return await feedback.upsert_feedback(db, **on(user, message), draft=draft)


# --- set, change, withdraw --------------------------------------------------------------


async def test_upsert_feedback_sets_changes_and_withdraws_with_exact_counts(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)

    first = await rate(pool, bob, message, "up")
    assert first.created is True
    assert (first.feedback.rating, first.feedback.score, first.feedback.comment) == (
        "up",
        None,
        None,
    )
    assert (first.feedback.message_id, first.feedback.seq) == (message.id, message.seq)
    assert first.feedback.user_id == bob.id and first.feedback.conversation_id == conversation.id
    assert await counts(pool, message) == (1, 0)

    changed = await rate(pool, bob, message, "down", score=2.5, comment="wrong city")
    assert changed.created is False
    assert (changed.feedback.rating, changed.feedback.score, changed.feedback.comment) == (
        "down",
        2.5,
        "wrong city",
    )
    assert changed.feedback.created_at == first.feedback.created_at
    assert changed.feedback.updated_at >= first.feedback.updated_at
    assert await counts(pool, message) == (0, 1)

    # The same rating again (a new comment): the counters stay; leaving score out clears it.
    again = await rate(pool, bob, message, "down", comment="still wrong")
    assert (again.created, again.feedback.score, again.feedback.comment) == (
        False,
        None,
        "still wrong",
    )
    assert await counts(pool, message) == (0, 1)

    await rate(pool, alice, message, "up", score=10)
    assert await counts(pool, message) == (1, 1)
    assert (await feedback.get_feedback(pool, **on(bob, message))).comment == "still wrong"

    await feedback.delete_feedback(pool, **on(bob, message))
    assert await counts(pool, message) == (1, 0)
    with pytest.raises(NotFound):
        await feedback.get_feedback(pool, **on(bob, message))
    with pytest.raises(NotFound):
        await feedback.delete_feedback(pool, **on(bob, message))
    assert await counts(pool, message) == (1, 0)
    assert (await feedback.get_feedback(pool, **on(alice, message))).score == 10.0
    # The message record carries the counts, for every member.
    read = await messages.get_message(
        pool, user_id=bob.id, conversation_id=conversation.id, message_id=message.id
    )
    assert (read.feedback_up, read.feedback_down) == (1, 0)


async def test_feedback_on_a_missing_message_is_not_found(pool: Any, alice: User) -> None:
    conversation = await shared(pool, alice)
    message = await post(pool, alice, conversation)
    other = await shared(pool, alice)
    # A message of another conversation, named under this one.
    ids = {"user_id": alice.id, "conversation_id": other.id, "message_id": message.id}
    with pytest.raises(NotFound, match="message"):
        await feedback.upsert_feedback(pool, **ids, draft=FeedbackDraft(rating="up"))
    with pytest.raises(NotFound, match="message"):
        await feedback.delete_feedback(pool, **ids)
    with pytest.raises(NotFound, match="message"):
        await feedback.get_feedback(pool, **ids)
    assert await counts(pool, message) == (0, 0)


async def test_feedback_on_a_retracted_message_is_refused_but_can_be_withdrawn(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    await rate(pool, bob, message, "up")
    await pool.execute(
        "UPDATE messages SET retracted_at = now() WHERE conversation_id = $1 AND seq = $2",
        conversation.id,
        message.seq,
    )
    with pytest.raises(Conflict, match="retracted"):
        await rate(pool, bob, message, "down")
    with pytest.raises(Conflict, match="retracted"):
        await rate(pool, alice, message, "up")
    assert await counts(pool, message) == (1, 0)
    assert (await feedback.get_feedback(pool, **on(bob, message))).rating == "up"
    await feedback.delete_feedback(pool, **on(bob, message))
    assert await counts(pool, message) == (0, 0)


# --- concurrency ------------------------------------------------------------------------


async def test_counts_stay_exact_with_20_members_toggling_concurrently(
    pool: Any, settings: Settings, alice: User
) -> None:
    members = [await make_user(pool) for _ in range(20)]
    conversation = await shared(pool, alice, *members)
    message = await post(pool, alice, conversation)
    rng = random.Random(10)

    async def toggle(index: int, member: User) -> None:
        for _ in range(6):
            if rng.random() < 0.2:
                try:
                    await feedback.delete_feedback(pool, **on(member, message))
                except NotFound:
                    pass
            else:
                await rate(pool, member, message, rng.choice(["up", "down"]))
        # Each member's last word: even members up, odd members down.
        await rate(pool, member, message, "up" if index % 2 == 0 else "down")

    await asyncio.gather(*(toggle(i, m) for i, m in enumerate(members)))
    assert await counts(pool, message) == await counted(pool, message) == (10, 10)

    async def withdraw(member: User) -> None:
        await feedback.delete_feedback(pool, **on(member, message))

    await asyncio.gather(*(withdraw(m) for m in members[:7]))
    assert await counts(pool, message) == await counted(pool, message) == (6, 7)


async def test_one_member_changing_twice_at_once_is_counted_once(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    await rate(pool, bob, message, "up")
    for _ in range(10):
        await asyncio.gather(
            rate(pool, bob, message, "down"),
            rate(pool, bob, message, "down"),
            rate(pool, bob, message, "up"),
        )
        assert await counts(pool, message) == await counted(pool, message)
        assert sum(await counts(pool, message)) == 1


async def test_change_waiting_on_a_concurrent_change_counts_from_the_replaced_rating(
    pool: Any, alice: User, bob: User
) -> None:
    """A change queued behind another change of the same member's feedback moves the counters
    from the rating that other change committed, not from the one its snapshot saw."""
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    await rate(pool, bob, message, "up")
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await rate(first, bob, message, "down")
        changing = asyncio.create_task(rate(second, bob, message, "down", comment="sure"))
        await wait_until_waiting_for_a_lock(pool, second.get_server_pid())
        await tx.commit()
        changed = await changing
    assert changed.created is False and changed.feedback.comment == "sure"
    assert await counts(pool, message) == await counted(pool, message) == (0, 1)


async def test_first_feedback_waiting_on_a_concurrent_first_replaces_it(
    pool: Any, alice: User, bob: User
) -> None:
    """Two first feedbacks of one member at once: the second sees no row, waits on the first's
    insert, then runs again and replaces it (counted once)."""
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await rate(first, bob, message, "up")
        setting = asyncio.create_task(rate(second, bob, message, "down"))
        await wait_until_waiting_for_a_lock(pool, second.get_server_pid())
        await tx.commit()
        result = await setting
    assert result.created is False and result.feedback.rating == "down"
    assert await counts(pool, message) == await counted(pool, message) == (0, 1)


async def test_withdraw_waiting_on_a_concurrent_change_takes_back_what_it_committed(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    await rate(pool, bob, message, "up")
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await rate(first, bob, message, "down")
        withdrawing = asyncio.create_task(feedback.delete_feedback(second, **on(bob, message)))
        await wait_until_waiting_for_a_lock(pool, second.get_server_pid())
        await tx.commit()
        await withdrawing
    assert await counts(pool, message) == (0, 0)


async def test_upsert_feedback_inside_a_caller_transaction_that_rolls_back_changes_nothing(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await rate(conn, bob, message, "up")
        await tx.rollback()
    assert await counts(pool, message) == (0, 0)
    with pytest.raises(NotFound):
        await feedback.get_feedback(pool, **on(bob, message))


# --- bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"rating": "meh"},
        {"rating": None},
        {"rating": "up", "score": float("nan")},
        {"rating": "up", "score": float("inf")},
        {"rating": "up", "score": -0.5},
        {"rating": "up", "score": 10.000001},
        {"rating": "up", "score": True},
        {"rating": "up", "score": "5"},
        {"rating": "up", "comment": "a\x00b"},
        {"rating": "up", "comment": 5},
        {"rating": "up", "extra": 1},
        {},
    ],
)
def test_feedback_draft_refuses_bad_input(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeedbackDraft.model_validate(fields)


def test_feedback_draft_takes_bounds_and_integers() -> None:
    assert FeedbackDraft.model_validate({"rating": "down", "score": 0}).score == 0
    assert FeedbackDraft.model_validate({"rating": "down", "score": 10}).score == 10
    assert FeedbackDraft.model_validate({"rating": "up", "comment": ""}).comment == ""


async def test_upsert_feedback_refuses_a_long_comment_and_changes_nothing(
    pool: Any, alice: User
) -> None:
    conversation = await shared(pool, alice)
    message = await post(pool, alice, conversation)
    draft = FeedbackDraft(rating="up", comment="é" * 11)
    with pytest.raises(InvalidInput, match="APP_MAX_FEEDBACK_COMMENT_CHARS"):
        await feedback.upsert_feedback(
            pool, **on(alice, message), draft=draft, max_comment_chars=10
        )
    assert await counts(pool, message) == (0, 0)
    # Characters, not bytes: ten two-byte characters fit.
    draft = FeedbackDraft(rating="up", comment="é" * 10)
    stored = await feedback.upsert_feedback(
        pool, **on(alice, message), draft=draft, max_comment_chars=10
    )
    assert stored.feedback.comment == "é" * 10


@pytest.mark.parametrize("score", [float("nan"), float("inf"), -1.0, 11.0])
async def test_the_schema_refuses_a_score_the_draft_would_refuse(
    pool: Any, alice: User, score: float
) -> None:
    """The CHECK constraint holds the score range for any writer (a draft built without
    validation here), and the error is InvalidInput with nothing changed."""
    conversation = await shared(pool, alice)
    message = await post(pool, alice, conversation)
    draft = FeedbackDraft.model_construct(rating="up", score=score, comment=None)
    with pytest.raises(InvalidInput):
        await feedback.upsert_feedback(pool, **on(alice, message), draft=draft)
    assert await counts(pool, message) == (0, 0)


# --- scoping: non-members, former members, rights ------------------------------------------


async def test_non_member_and_former_member_get_not_found_for_everything(
    pool: Any, alice: User, bob: User
) -> None:
    carol = await make_user(pool, "carol")
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    await rate(pool, bob, message, "up")
    await pool.execute(
        "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        conversation.id,
        bob.id,
    )
    for outsider in (carol, bob):
        with pytest.raises(NotFound, match="conversation"):
            await rate(pool, outsider, message, "down")
        with pytest.raises(NotFound, match="conversation"):
            await feedback.delete_feedback(pool, **on(outsider, message))
        with pytest.raises(NotFound, match="conversation"):
            await feedback.get_feedback(pool, **on(outsider, message))
        with pytest.raises(NotFound, match="conversation"):
            await feedback.list_feedback(pool, user_id=outsider.id, conversation_id=conversation.id)
    # A former member's feedback stays, and counted.
    assert await counts(pool, message) == (1, 0)
    page = await feedback.list_feedback(pool, user_id=alice.id, conversation_id=conversation.id)
    assert [f.user_id for f in page.items] == [bob.id]


async def test_rights_come_from_conversation_rights(pool: Any, alice: User, bob: User) -> None:
    """Without the 'feedback' right a member may not set or withdraw feedback (NotPermitted,
    nothing changes) but still reads it; without 'read' they may not read it. The rights are
    rows of conversation_rights, read by the statements."""
    conversation = await shared(pool, alice, bob)
    message = await post(pool, alice, conversation)
    await rate(pool, bob, message, "up")
    await pool.execute(
        "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'feedback'"
    )
    with pytest.raises(NotPermitted):
        await rate(pool, bob, message, "down")
    with pytest.raises(NotPermitted):
        await feedback.delete_feedback(pool, **on(bob, message))
    assert await counts(pool, message) == (1, 0)
    assert (await feedback.get_feedback(pool, **on(bob, message))).rating == "up"
    # The owner keeps the right.
    await rate(pool, alice, message, "down")
    assert await counts(pool, message) == (1, 1)

    await pool.execute("DELETE FROM conversation_rights WHERE role = 'member' AND action = 'read'")
    with pytest.raises(NotPermitted):
        await feedback.get_feedback(pool, **on(bob, message))
    with pytest.raises(NotPermitted):
        await feedback.list_feedback(pool, user_id=bob.id, conversation_id=conversation.id)
    # Back: the same member may act again.
    await pool.execute(
        "INSERT INTO conversation_rights (role, action) VALUES ('member', 'feedback')"
    )
    await rate(pool, bob, message, "down")
    assert await counts(pool, message) == (0, 2)


async def test_feedback_is_per_user_and_per_conversation(pool: Any, alice: User, bob: User) -> None:
    first = await shared(pool, alice, bob)
    second = await shared(pool, bob, alice)
    m1 = await post(pool, alice, first, "one")
    m2 = await post(pool, bob, second, "two")
    await rate(pool, alice, m1, "up", comment="alice on one")
    await rate(pool, bob, m1, "down", comment="bob on one")
    await rate(pool, alice, m2, "down", comment="alice on two")
    assert (await feedback.get_feedback(pool, **on(alice, m1))).comment == "alice on one"
    assert (await feedback.get_feedback(pool, **on(bob, m1))).comment == "bob on one"
    with pytest.raises(NotFound):
        await feedback.get_feedback(pool, **on(bob, m2))
    assert await counts(pool, m1) == (1, 1) and await counts(pool, m2) == (0, 1)
    one = await feedback.list_feedback(pool, user_id=bob.id, conversation_id=first.id)
    two = await feedback.list_feedback(pool, user_id=bob.id, conversation_id=second.id)
    assert {f.comment for f in one.items} == {"alice on one", "bob on one"}
    assert [f.comment for f in two.items] == ["alice on two"]
    await feedback.delete_feedback(pool, **on(alice, m1))
    assert await counts(pool, m1) == (0, 1) and await counts(pool, m2) == (0, 1)


# --- the list ---------------------------------------------------------------------------


async def test_list_feedback_pages_by_seq_then_user_with_a_rating_filter(
    pool: Any, alice: User
) -> None:
    members = [await make_user(pool) for _ in range(3)]
    conversation = await shared(pool, alice, *members)
    posted = [await post(pool, alice, conversation, f"m{i}") for i in range(4)]
    voters = [alice, *members]
    expected = []
    for message in posted:
        for i, voter in enumerate(voters):
            if (message.seq + i) % 3:
                rating = "up" if (message.seq + i) % 2 else "down"
                await rate(pool, voter, message, rating)
                expected.append((message.seq, voter.id, rating))
    expected.sort(key=lambda e: (e[0], e[1]))

    async def read_all(**options: Any) -> list[tuple[int, UUID, str]]:
        seen: list[tuple[int, UUID, str]] = []
        cursor = None
        while True:
            page = await feedback.list_feedback(
                pool,
                user_id=members[0].id,
                conversation_id=conversation.id,
                limit=3,
                cursor=cursor,
                **options,
            )
            assert len(page.items) <= 3
            seen += [(f.seq, f.user_id, f.rating) for f in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return seen

    assert await read_all() == expected
    assert await read_all(rating="down") == [e for e in expected if e[2] == "down"]
    whole = await feedback.list_feedback(pool, user_id=alice.id, conversation_id=conversation.id)
    assert whole.next_cursor is None and len(whole.items) == len(expected)
    by_seq = {m.seq: m.id for m in posted}
    assert all(f.message_id == by_seq[f.seq] for f in whole.items)


async def test_list_feedback_of_a_conversation_without_feedback_is_empty(
    pool: Any, alice: User
) -> None:
    conversation = await shared(pool, alice)
    page = await feedback.list_feedback(pool, user_id=alice.id, conversation_id=conversation.id)
    assert page.items == [] and page.next_cursor is None


@pytest.mark.parametrize("cursor", ["nope", "W10", "WyJhIiwgMV0", "Wy0xLCAiYSJd"])
async def test_list_feedback_refuses_a_cursor_not_its_own(
    pool: Any, alice: User, cursor: str
) -> None:
    conversation = await shared(pool, alice)
    with pytest.raises(InvalidInput, match="cursor"):
        await feedback.list_feedback(
            pool, user_id=alice.id, conversation_id=conversation.id, cursor=cursor
        )
    with pytest.raises(InvalidInput):
        await feedback.list_feedback(
            pool, user_id=alice.id, conversation_id=conversation.id, limit=0
        )


# --- session state ------------------------------------------------------------------------


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Feedback, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    conversation = await run.one(
        "insert_conversation",
        lambda: conversations.insert_conversation(pool, user_id=user.id, draft=ConversationDraft()),
    )
    message = await run.one("insert_message", lambda: post(pool, user, conversation))
    ids = on(user, message)
    missing = {**ids, "message_id": conversation.id}
    await run(
        [
            ("upsert_feedback", lambda: rate(pool, user, message, "up", score=1)),
            ("upsert_feedback change", lambda: rate(pool, user, message, "down")),
            (
                "upsert_feedback too long",
                lambda: feedback.upsert_feedback(
                    pool,
                    **ids,
                    draft=FeedbackDraft(rating="up", comment="xx"),
                    max_comment_chars=1,
                ),
            ),
            (
                "upsert_feedback bad score",
                lambda: feedback.upsert_feedback(
                    pool, **ids, draft=FeedbackDraft.model_construct(rating="up", score=-1.0)
                ),
            ),
            (
                "upsert_feedback missing",
                lambda: feedback.upsert_feedback(pool, **missing, draft=FeedbackDraft(rating="up")),
            ),
            ("get_feedback", lambda: feedback.get_feedback(pool, **ids)),
            (
                "list_feedback",
                lambda: feedback.list_feedback(
                    pool, user_id=user.id, conversation_id=conversation.id, limit=1
                ),
            ),
            (
                "list_feedback bad cursor",
                lambda: feedback.list_feedback(
                    pool, user_id=user.id, conversation_id=conversation.id, cursor="x"
                ),
            ),
            ("delete_feedback", lambda: feedback.delete_feedback(pool, **ids)),
            ("delete_feedback none", lambda: feedback.delete_feedback(pool, **ids)),
            ("get_feedback none", lambda: feedback.get_feedback(pool, **ids)),
        ]
    )


# --- plans ------------------------------------------------------------------------------


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("rating", [None, "down"])
async def test_list_feedback_keyset_is_an_index_condition_of_the_primary_key(
    database_url: str, generic: bool, rating: str | None
) -> None:
    """A page starts at its cursor in message_feedback_pkey (an index condition, not a filter)
    and comes out in the index's order: no sort below the page's LIMIT, no sequential scan, no
    join reading the conversation's messages, on a conversation with
    10,000 feedback rows (ANALYZEd, so a sequential scan would be chosen if it could)."""
    conn = await asyncpg.connect(database_url)
    try:
        owner = await conn.fetchval(
            "INSERT INTO users (id, username) VALUES (gen_random_uuid(), 'owner') RETURNING id"
        )
        conversation = await conn.fetchval(
            "INSERT INTO conversations (id, user_id, title, last_seq, message_count)"
            " VALUES (gen_random_uuid(), $1, 'busy', 2000, 2000) RETURNING id",
            owner,
        )
        await conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'voter' || i FROM generate_series(1, 5) AS i;
            INSERT INTO conversation_members (conversation_id, user_id, role)
            SELECT '{conversation}', id, CASE WHEN id = '{owner}' THEN 'owner' ELSE 'member' END
              FROM users
                ON CONFLICT DO NOTHING;
            """
        )
        await conn.execute(
            f"""
            INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                                  parts_count, metadata_bytes)
            SELECT '{conversation}', s, gen_random_uuid(), 'user',
                   '[{{"type": "text", "text": "x"}}]', 'x', 29, 1, 2
              FROM generate_series(1, 2000) AS s;
            INSERT INTO message_feedback (conversation_id, seq, user_id, rating)
            SELECT '{conversation}', s, u.id, CASE WHEN s % 3 = 0 THEN 'down' ELSE 'up' END
              FROM generate_series(1, 2000) AS s, users AS u
             WHERE u.username LIKE 'voter%';
            ANALYZE;
            """
        )
        args = (owner, conversation, 1000, UUID(int=0), rating, 51)
        nodes = await explain(conn, Q["list_feedback"], *args, generic=generic)
    finally:
        await conn.close()
    assert_index_scan(nodes, "message_feedback_pkey", "message_feedback")
    (scan,) = [n for n in nodes if n.get("Index Name") == "message_feedback_pkey"]
    assert "seq" in scan["Index Cond"] and "user_id" in scan["Index Cond"], scan
    # The index gives the order: the only sort is of the page, above its LIMIT.
    kinds = [n.get("Node Type") for n in nodes]
    assert "Sort" not in kinds[kinds.index("Limit") :], kinds
    # The message of each row by its key, not a join reading the conversation's messages.
    assert not {"Merge Join", "Hash Join"} & set(kinds), kinds
    assert "message_feedback_pkey" in Q["list_feedback"].uses
