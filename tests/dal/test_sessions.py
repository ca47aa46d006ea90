"""Chat sessions: decided by the append's statement (messages.insert_message), listed and
ended here. The clock is the test's: stored activity times are moved back with SQL (inside
one transaction now() is one instant, so a boundary is exact), never slept for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dal.database import transaction
from dal.errors import Conflict, NotFound, NotPermitted
from dal.gateways import messages, sessions
from dal.records.conversations import Conversation
from dal.records.messages import MessageDraft
from dal.records.users import User
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

TIMEOUT = 900.0


async def say(db: Any, user: User, conv: Conversation, text: str = "hi", **kw: Any) -> Any:
    draft = MessageDraft(role=kw.pop("role", "user"), parts=[{"type": "text", "text": text}])
    appended = await messages.insert_message(
        db, user_id=user.id, conversation_id=conv.id, draft=draft, **kw
    )
    return appended.message


async def backdate(db: Any, conv: Conversation, seconds: float) -> None:
    """The conversation's last activity (and its session's) ``seconds`` before now()."""
    await db.execute(
        "UPDATE conversations SET session_active_at = now() - make_interval(secs => $2)"
        " WHERE id = $1",
        conv.id,
        seconds,
    )
    await db.execute(
        "UPDATE chat_sessions SET last_activity_at = now() - make_interval(secs => $2)"
        " WHERE conversation_id = $1"
        "   AND session_no = (SELECT session_no FROM conversations WHERE id = $1)",
        conv.id,
        seconds,
    )


async def join(pool: Any, conv: Conversation, user: User, role: str) -> None:
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)",
        conv.id,
        user.id,
        role,
    )


async def test_messages_join_one_session_until_the_timeout_passes(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    first = await say(pool, alice, conv)
    second = await say(pool, alice, conv, role="assistant")
    assert (first.session_no, second.session_no) == (1, 1)
    await backdate(pool, conv, TIMEOUT + 1)
    third = await say(pool, alice, conv)
    assert third.session_no == 2
    page = await sessions.list_sessions(pool, user_id=alice.id, conversation_id=conv.id)
    newest, oldest = page.items
    assert (newest.session_no, newest.first_seq, newest.last_seq, newest.message_count) == (
        2,
        3,
        3,
        1,
    )
    assert newest.open and newest.ended_at is None
    assert (oldest.session_no, oldest.first_seq, oldest.last_seq, oldest.message_count) == (
        1,
        1,
        2,
        2,
    )
    # It timed out: its end is its last activity plus the timeout.
    assert not oldest.open and oldest.ended_at is not None
    assert (oldest.ended_at - oldest.last_activity_at).total_seconds() == TIMEOUT


@pytest.mark.parametrize(("age", "session_no"), [(TIMEOUT, 1), (TIMEOUT + 0.001, 2)])
async def test_session_boundary_exactly_at_the_timeout_joins_just_past_it_starts_anew(
    pool: Any, alice: User, age: float, session_no: int
) -> None:
    conv = await make_conversation(pool, alice)
    await say(pool, alice, conv)
    async with transaction(pool) as tx:  # one now() for the backdating and the append
        await backdate(tx, conv, age)
        message = await say(tx, alice, conv, session_timeout=TIMEOUT)
    assert message.session_no == session_no


async def test_the_timeout_is_a_setting(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    await say(pool, alice, conv, session_timeout=60)
    await backdate(pool, conv, 61)
    assert (await say(pool, alice, conv, session_timeout=60)).session_no == 2
    await backdate(pool, conv, 61)
    assert (await say(pool, alice, conv, session_timeout=3600)).session_no == 2


async def test_ending_a_session_makes_the_next_message_start_one(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    with pytest.raises(Conflict, match="no chat session yet"):
        await sessions.update_session_end(pool, user_id=alice.id, conversation_id=conv.id)
    await say(pool, alice, conv)
    ended = await sessions.update_session_end(pool, user_id=alice.id, conversation_id=conv.id)
    assert ended.session_no == 1 and ended.ended_at is not None and not ended.open
    again = await sessions.update_session_end(pool, user_id=alice.id, conversation_id=conv.id)
    assert again.ended_at == ended.ended_at  # an ended session keeps its end
    assert (await say(pool, alice, conv)).session_no == 2
    assert (await say(pool, alice, conv)).session_no == 2
    page = await sessions.list_sessions(pool, user_id=alice.id, conversation_id=conv.id, after=0)
    assert [(s.session_no, s.open, s.message_count) for s in page.items] == [
        (1, False, 1),
        (2, True, 2),
    ]


async def test_ending_a_timed_out_session_keeps_the_moment_it_timed_out(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    await say(pool, alice, conv)
    await backdate(pool, conv, 2 * TIMEOUT)
    ended = await sessions.update_session_end(pool, user_id=alice.id, conversation_id=conv.id)
    assert ended.ended_at is not None
    assert (ended.ended_at - ended.last_activity_at).total_seconds() == TIMEOUT


async def test_end_session_needs_the_right_and_membership(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    await say(pool, alice, conv)
    member, moderator, stranger = [await make_user(pool) for _ in range(3)]
    await join(pool, conv, member, "member")
    await join(pool, conv, moderator, "moderator")
    with pytest.raises(NotPermitted):
        await sessions.update_session_end(pool, user_id=member.id, conversation_id=conv.id)
    assert (
        (await sessions.list_sessions(pool, user_id=member.id, conversation_id=conv.id))
        .items[0]
        .open
    )
    with pytest.raises(NotFound):
        await sessions.update_session_end(pool, user_id=stranger.id, conversation_id=conv.id)
    with pytest.raises(NotFound):
        await sessions.list_sessions(pool, user_id=stranger.id, conversation_id=conv.id)
    ended = await sessions.update_session_end(pool, user_id=moderator.id, conversation_id=conv.id)
    assert not ended.open


async def test_sessions_page_both_ways_by_session_no(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    for _ in range(5):
        await say(pool, alice, conv)
        await sessions.update_session_end(pool, user_id=alice.id, conversation_id=conv.id)
    ids = dict(user_id=alice.id, conversation_id=conv.id)
    first = await sessions.list_sessions(pool, **ids, limit=2)
    assert [s.session_no for s in first.items] == [5, 4] and first.has_more
    rest = await sessions.list_sessions(pool, **ids, limit=3, before=4)
    assert [s.session_no for s in rest.items] == [3, 2, 1] and not rest.has_more
    up = await sessions.list_sessions(pool, **ids, limit=3, after=2)
    assert [s.session_no for s in up.items] == [3, 4, 5] and not up.has_more
    empty = await make_conversation(pool, alice)
    page = await sessions.list_sessions(pool, user_id=alice.id, conversation_id=empty.id)
    assert page.items == [] and not page.has_more


async def test_an_end_racing_appends_ends_the_session_the_appends_left(
    pool: Any, alice: User
) -> None:
    """The end waits for the conversation's row; whatever session the appends before it left
    is the one it ends (its chat_sessions row is reached even if committed meanwhile)."""
    import asyncio

    conv = await make_conversation(pool, alice)
    await say(pool, alice, conv)
    await backdate(pool, conv, TIMEOUT + 1)
    async with transaction(pool) as tx:
        started = await say(tx, alice, conv)  # session 2, holding the conversation's row
        end = asyncio.create_task(
            sessions.update_session_end(pool, user_id=alice.id, conversation_id=conv.id)
        )
        await asyncio.sleep(0.2)  # let it queue behind the row lock (not a time window)
        assert not end.done()
    ended = await end
    assert started.session_no == 2 and ended.session_no == 2 and ended.ended_at is not None


async def session_exercise(pool: Any, settings: Any, run: SessionRun) -> None:
    """Chat sessions, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    conv = await run.one("make_conversation", lambda: make_conversation(pool, user))
    ids = {"user_id": user.id, "conversation_id": conv.id}
    await run(
        [
            ("update_session_end none", lambda: sessions.update_session_end(pool, **ids)),
            ("append", lambda: say(pool, user, conv)),
            ("list_sessions", lambda: sessions.list_sessions(pool, **ids)),
            ("list_sessions after", lambda: sessions.list_sessions(pool, **ids, after=0)),
            ("update_session_end", lambda: sessions.update_session_end(pool, **ids)),
        ]
    )
