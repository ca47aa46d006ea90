"""Tool-call integrity (README "Tool-call integrity"): decided at the append, per the
conversation's tool_integrity: 'off' checks nothing, 'flag' stores with ``integrity`` set (and
lists those), 'reject' refuses (ToolCallUnpaired, 422) naming the call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from dal.errors import ToolCallUnpaired
from dal.gateways import conversations, messages
from dal.records.conversations import Conversation, ConversationPatch
from dal.records.messages import MessageDraft
from dal.records.users import User
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


def call(call_id: str, state: str = "input-available", name: str = "weather") -> dict[str, Any]:
    return {"type": f"tool-{name}", "toolCallId": call_id, "state": state, "input": {"q": 1}}


def dynamic(call_id: str, state: str = "input-available") -> dict[str, Any]:
    return {"type": "dynamic-tool", "toolName": "x", "toolCallId": call_id, "state": state}


def result(call_id: str) -> dict[str, Any]:
    """A part of a 'tool' message (any part with a toolCallId answers that call)."""
    return {
        "type": "tool-weather",
        "toolCallId": call_id,
        "state": "output-available",
        "output": {"t": 12},
    }


def text(value: str = "hi") -> dict[str, Any]:
    return {"type": "text", "text": value}


async def say(db: Any, user: User, conv: Conversation, role: str, *parts: Any, **kw: Any) -> Any:
    draft = MessageDraft(role=role, parts=list(parts), status=kw.pop("status", "complete"))  # type: ignore[arg-type]
    appended = await messages.insert_message(
        db, user_id=user.id, conversation_id=conv.id, draft=draft
    )
    return appended.message


async def chat(pool: Any, user: User, mode: str) -> Conversation:
    conv = await make_conversation(pool, user)
    await conversations.update_conversation(
        pool,
        user_id=user.id,
        conversation_id=conv.id,
        patch=ConversationPatch(tool_integrity=mode),  # type: ignore[arg-type]
    )
    return conv


async def flagged(pool: Any, user: User, conv: Conversation) -> list[tuple[int, str | None]]:
    page = await messages.list_messages_flagged(pool, user_id=user.id, conversation_id=conv.id)
    return [(m.seq, m.integrity) for m in page.items]


async def test_paired_calls_and_results_pass_in_every_mode(pool: Any, alice: User) -> None:
    for mode in ("off", "flag", "reject"):
        conv = await chat(pool, alice, mode)
        await say(pool, alice, conv, "user", text())
        await say(pool, alice, conv, "assistant", text("let me look"), call("c1"), dynamic("c2"))
        await say(pool, alice, conv, "tool", result("c1"))
        await say(pool, alice, conv, "tool", result("c2"))
        # A call answered in place (output-available) needs no tool message.
        await say(pool, alice, conv, "assistant", call("c3", "output-available"), text("12°"))
        done = await say(pool, alice, conv, "user", text("thanks"))
        assert done.integrity is None
        assert await flagged(pool, alice, conv) == []


async def test_flag_stores_an_unanswered_call_and_an_unknown_result_and_lists_them(
    pool: Any, alice: User
) -> None:
    conv = await chat(pool, alice, "flag")
    await say(pool, alice, conv, "assistant", call("c1"), call("c2"))
    await say(pool, alice, conv, "tool", result("c1"))  # c2 never answered
    user = await say(pool, alice, conv, "user", text("and?"))
    assert user.integrity == "unanswered_tool_call"
    # Reported once: the call is closed by the message that followed it unanswered.
    assert (await say(pool, alice, conv, "assistant", text("sorry"))).integrity is None
    stray = await say(pool, alice, conv, "tool", result("nobody-called-this"))
    assert stray.integrity == "unknown_tool_result"
    assert await flagged(pool, alice, conv) == [
        (3, "unanswered_tool_call"),
        (5, "unknown_tool_result"),
    ]
    rows = await pool.fetch(
        "SELECT tool_call_id, call_seq, result_seq, unanswered_seq FROM message_tool_calls"
        " WHERE conversation_id = $1 ORDER BY tool_call_id",
        conv.id,
    )
    assert [tuple(r) for r in rows] == [("c1", 1, 2, None), ("c2", 1, None, 3)]


async def test_reject_refuses_naming_the_call_and_stores_nothing(pool: Any, alice: User) -> None:
    conv = await chat(pool, alice, "reject")
    await say(pool, alice, conv, "assistant", call("c1"), call("c2"))
    await say(pool, alice, conv, "tool", result("c1"))
    with pytest.raises(ToolCallUnpaired, match="'c2'") as refused:
        await say(pool, alice, conv, "user", text("and?"))
    assert refused.value.code == "tool_call_unpaired"
    with pytest.raises(ToolCallUnpaired, match="'zz'"):
        await say(pool, alice, conv, "tool", result("zz"))
    last = await pool.fetchrow(
        "SELECT last_seq, message_count FROM conversations WHERE id = $1", conv.id
    )
    assert tuple(last) == (2, 2)
    # Once the result is there, the conversation goes on.
    await say(pool, alice, conv, "tool", result("c2"))
    assert (await say(pool, alice, conv, "user", text("and?"))).seq == 4


async def test_an_assistant_message_right_after_unanswered_calls_is_unpaired(
    pool: Any, alice: User
) -> None:
    conv = await chat(pool, alice, "reject")
    await say(pool, alice, conv, "assistant", call("c1"))
    with pytest.raises(ToolCallUnpaired, match="'c1'"):
        await say(pool, alice, conv, "assistant", text("never mind"))


async def test_calls_of_a_streamed_message_count_as_it_stands_when_the_next_is_appended(
    pool: Any, alice: User
) -> None:
    """The calls are read from the message the new one follows, at that append: a streamed
    answer's calls (appended by append_parts, finalized later) are known to its results."""
    from dal.records.messages import MessagePatch

    conv = await chat(pool, alice, "reject")
    streamed = await say(pool, alice, conv, "assistant", status="streaming")
    await messages.update_message(
        pool,
        user_id=alice.id,
        conversation_id=conv.id,
        message_id=streamed.id,
        patch=MessagePatch(append_parts=[call("s1")]),
    )
    await messages.update_message(
        pool,
        user_id=alice.id,
        conversation_id=conv.id,
        message_id=streamed.id,
        patch=MessagePatch(status="complete"),
    )
    assert (await say(pool, alice, conv, "tool", result("s1"))).integrity is None
    assert (await say(pool, alice, conv, "user", text())).integrity is None


async def test_off_checks_and_records_nothing(pool: Any, alice: User) -> None:
    conv = await chat(pool, alice, "off")
    await say(pool, alice, conv, "assistant", call("c1"))
    assert (await say(pool, alice, conv, "user", text())).integrity is None
    assert (await say(pool, alice, conv, "tool", result("zz"))).integrity is None
    recorded = await pool.fetchval(
        "SELECT count(*) FROM message_tool_calls WHERE conversation_id = $1", conv.id
    )
    assert recorded == 0


async def test_a_streaming_message_is_not_checked(pool: Any, alice: User) -> None:
    conv = await chat(pool, alice, "reject")
    await say(pool, alice, conv, "assistant", call("c1"))
    # A streaming message is not checked at its append (nor at finalize: README).
    streaming = await say(pool, alice, conv, "assistant", text("…"), status="streaming")
    assert streaming.integrity is None


async def session_exercise(pool: Any, settings: Any, run: SessionRun) -> None:
    """Tool-call integrity and its flagged list, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    conv = await run.one("chat", lambda: chat(pool, user, "flag"))
    ids = {"user_id": user.id, "conversation_id": conv.id}
    await run(
        [
            ("call", lambda: say(pool, user, conv, "assistant", call("c1"))),
            ("unanswered", lambda: say(pool, user, conv, "user", text())),
            ("list_messages_flagged", lambda: messages.list_messages_flagged(pool, **ids)),
        ]
    )


async def test_flagged_list_and_open_calls_are_read_by_their_partial_indexes(
    pool: Any, settings: Any, alice: User
) -> None:
    """list_messages_flagged reads messages_flagged_idx, and the append finds a conversation's
    open calls by message_tool_calls_open_idx (generic plans, as prepared statements run)."""
    import asyncpg

    from dal.queries import Q
    from tests.dal.test_plans import assert_index_scan, explain

    conv = await chat(pool, alice, "flag")
    conn = await asyncpg.connect(settings.database_url)  # no json codec: EXPLAIN's text
    try:
        nodes = await explain(
            conn, Q["list_messages_flagged"], alice.id, conv.id, 0, 51, generic=True
        )
        assert_index_scan(nodes, "messages_flagged_idx", "messages")
        args = (alice.id, conv.id, alice.id, "user", "[]", "{}", "complete", 1 << 20, 9, None)
        nodes = await explain(conn, Q["insert_message"], *args, 900.0, 0, 0, "{}", generic=True)
        assert_index_scan(nodes, "message_tool_calls_open_idx", "message_tool_calls")
    finally:
        await conn.close()
