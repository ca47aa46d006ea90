"""Event logs (migration 20261207_04, queries/events.sql): what the database logs by itself
(message.*, conversation.updated, task status), appends by members, owners and workers, the
gapless seq under concurrent writers (and across a rollback), paging, the NOTIFY each append
sends at commit, and who may read and write which log."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest
from pydantic import ValidationError

from dal.database import transaction
from dal.errors import InvalidInput, NotFound, NotPermitted, TooLarge
from dal.gateways import conversations, events, messages, tasks
from dal.records.conversations import ConversationPatch
from dal.records.events import EventBatch, EventDraft
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.tasks import TaskDraft
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def drafts(*types: str) -> list[EventDraft]:
    return [EventDraft(type=kind, payload={"n": i}) for i, kind in enumerate(types)]


async def conversation_log(pool: Any, user: User, conversation_id: UUID) -> list[Any]:
    page = await events.list_conversation_events(
        pool, user_id=user.id, conversation_id=conversation_id, limit=1000
    )
    return page.items


async def add_member(db: Any, conversation_id: UUID, user: User, role: str) -> None:
    await db.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)",
        conversation_id,
        user.id,
        role,
    )


async def test_messages_log_their_creation_deltas_updates_and_retraction(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    streaming = await messages.insert_message(
        pool, **ids, draft=MessageDraft(role="assistant", parts=[text("Hel")], status="streaming")
    )
    message_id = streaming.message.id
    await messages.update_message(
        pool, **ids, message_id=message_id, patch=MessagePatch(append_parts=[text("lo")])
    )
    await messages.update_message(
        pool, **ids, message_id=message_id, patch=MessagePatch(status="complete")
    )
    await conversations.update_conversation(
        pool, **ids, patch=ConversationPatch(title="renamed", tags=["a"])
    )
    await messages.delete_message(pool, **ids, message_id=message_id)
    log = await conversation_log(pool, alice, conv.id)
    assert [e.seq for e in log] == [1, 2, 3, 4, 5]
    assert [e.type for e in log] == [
        "message.created",
        "message.delta",
        "message.updated",
        "conversation.updated",
        "message.retracted",
    ]
    created, delta, updated, renamed, retracted = (e.payload for e in log)
    assert created == {
        "id": str(message_id),
        "seq": 1,
        "role": "assistant",
        "status": "streaming",
        "sender_id": str(alice.id),
        "parent_seq": None,
        "parts_count": 1,
    }
    assert delta["index"] == 1 and delta["parts"] == [text("lo")] and delta["parts_count"] == 2
    assert updated["status"] == "complete" and updated["edited"] is False
    assert renamed["title"] == "renamed" and renamed["tags"] == ["a"]
    assert retracted == {"id": str(message_id), "seq": 1}


async def test_replacing_parts_is_an_update_not_a_delta(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    streaming = await messages.insert_message(
        pool, **ids, draft=MessageDraft(role="assistant", parts=[text("a")], status="streaming")
    )
    await messages.update_message(
        pool,
        **ids,
        message_id=streaming.message.id,
        patch=MessagePatch(parts=[text("b"), text("c")]),
    )
    log = await conversation_log(pool, alice, conv.id)
    assert [e.type for e in log] == ["message.created", "message.updated"]


async def test_a_hard_deletion_logs_and_a_deleted_conversation_takes_its_log(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    sent = await messages.insert_message(
        pool, **ids, draft=MessageDraft(role="user", parts=[text("x")])
    )
    await pool.execute("DELETE FROM messages WHERE id = $1", sent.message.id)
    log = await conversation_log(pool, alice, conv.id)
    assert [e.type for e in log] == ["message.created", "message.deleted"]
    await conversations.delete_conversation(pool, **ids)
    left = await pool.fetchval(
        "SELECT count(*) FROM conversation_events WHERE conversation_id = $1", conv.id
    )
    assert left == 0


async def test_a_task_logs_every_status_change(pool: Any, alice: User) -> None:
    task = await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="ev"))
    [claimed] = await tasks.claim_tasks(pool, kinds=["ev"], worker="w1", lease_seconds=30)
    await events.append_task_events(pool, task_id=task.id, events=drafts("plan", "step.started"))
    await tasks.fail_task(pool, task_id=task.id, worker="w1", error={"why": "flaky"})
    await pool.execute("UPDATE tasks SET run_after = now() WHERE id = $1", task.id)
    await tasks.claim_tasks(pool, kinds=["ev"], worker="w2", lease_seconds=30)
    await tasks.complete_task(pool, task_id=task.id, worker="w2", result={"ok": True})
    page = await events.list_task_events(pool, user_id=alice.id, task_id=task.id)
    assert page.last_seq == 7
    assert [(e.seq, e.type, e.payload.get("status")) for e in page.items] == [
        (1, "status", "pending"),
        (2, "status", "running"),
        (3, "plan", None),
        (4, "step.started", None),
        (5, "status", "pending"),
        (6, "status", "running"),
        (7, "status", "succeeded"),
    ]
    assert page.items[1].payload == {"status": "running", "attempts": 1, "worker": "w1"}
    assert page.items[4].payload["error"] == {"why": "flaky"}
    assert claimed.id == task.id


async def test_pages_follow_after_and_limit(pool: Any, alice: User) -> None:
    task = await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="ev"))
    await events.append_task_events(
        pool, task_id=task.id, events=drafts(*["tick"] * 9), user_id=alice.id
    )
    seen: list[int] = []
    after = 0
    while True:
        page = await events.list_task_events(
            pool, user_id=alice.id, task_id=task.id, after=after, limit=4
        )
        assert page.last_seq == 10
        if not page.items:
            break
        seen += [e.seq for e in page.items]
        after = page.items[-1].seq
    assert seen == list(range(1, 11))
    with pytest.raises(InvalidInput):
        await events.list_task_events(pool, user_id=alice.id, task_id=task.id, after=-1)
    with pytest.raises(InvalidInput):
        await events.list_task_events(pool, user_id=alice.id, task_id=task.id, limit=0)


async def test_concurrent_appenders_get_a_gapless_log(pool: Any, alice: User) -> None:
    """Eight writers (event appends and message appends) on one conversation at once: the
    seqs are exactly 1..N, each event once, each writer's own events in its order."""
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}

    async def writer(w: int) -> None:
        for i in range(25):
            if (w + i) % 3 == 0:
                await messages.insert_message(
                    pool, **ids, draft=MessageDraft(role="user", parts=[text(f"{w}/{i}")])
                )
            else:
                await events.append_conversation_events(
                    pool,
                    **ids,
                    events=[
                        EventDraft(type="panel", payload={"w": w, "i": i, "k": k}) for k in (0, 1)
                    ],
                )

    await asyncio.gather(*(writer(w) for w in range(8)))
    log = await conversation_log(pool, alice, conv.id)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    panels = [(e.payload["w"], e.payload["i"], e.payload["k"]) for e in log if e.type == "panel"]
    assert len(panels) == len(set(panels))
    for w in range(8):
        mine = [(i, k) for (pw, i, k) in panels if pw == w]
        assert mine == sorted(mine)
    created = [e for e in log if e.type == "message.created"]
    assert len(created) == sum(1 for w in range(8) for i in range(25) if (w + i) % 3 == 0)
    head = await pool.fetchval("SELECT last_event_seq FROM conversations WHERE id = $1", conv.id)
    assert head == len(log)


async def test_a_rolled_back_append_leaves_no_gap_and_sends_nothing(
    pool: Any, alice: User, database_url: str
) -> None:
    task = await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="ev"))
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("mnemo_events", lambda *args: heard.put_nowait(args[3]))
        with pytest.raises(RuntimeError):
            async with transaction(pool) as tx:
                await events.append_task_events(tx, task_id=task.id, events=drafts("lost"))
                raise RuntimeError("roll back")
        [kept] = await events.append_task_events(pool, task_id=task.id, events=drafts("kept"))
        assert kept.seq == 2
        assert await asyncio.wait_for(heard.get(), 10) == f"task:{task.id}:2"
        assert heard.empty()
    finally:
        await listener.close()


async def test_a_batch_notifies_once_with_its_last_seq(
    pool: Any, alice: User, database_url: str
) -> None:
    conv = await make_conversation(pool, alice)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("mnemo_events", lambda *args: heard.put_nowait(args[3]))
        written = await events.append_conversation_events(
            pool, user_id=alice.id, conversation_id=conv.id, events=drafts("a", "b", "c")
        )
        assert [e.seq for e in written] == [1, 2, 3]
        assert await asyncio.wait_for(heard.get(), 10) == f"conversation:{conv.id}:3"
        await pool.execute("SELECT 1")  # a round trip: anything else sent would be here now
        await asyncio.sleep(0.05)
        assert heard.empty()
    finally:
        await listener.close()


async def test_who_may_read_and_append(pool: Any, alice: User, bob: User) -> None:
    conv = await make_conversation(pool, alice)
    task = await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="ev"))
    with pytest.raises(NotFound):
        await events.list_conversation_events(pool, user_id=bob.id, conversation_id=conv.id)
    with pytest.raises(NotFound):
        await events.append_conversation_events(
            pool, user_id=bob.id, conversation_id=conv.id, events=drafts("x")
        )
    with pytest.raises(NotFound):
        await events.list_task_events(pool, user_id=bob.id, task_id=task.id)
    with pytest.raises(NotFound):
        await events.append_task_events(pool, user_id=bob.id, task_id=task.id, events=drafts("x"))
    await add_member(pool, conv.id, bob, "member")
    page = await events.list_conversation_events(pool, user_id=bob.id, conversation_id=conv.id)
    assert page.items == [] and page.last_seq == 0
    [written] = await events.append_conversation_events(
        pool, user_id=bob.id, conversation_id=conv.id, events=drafts("analysis")
    )
    assert written.seq == 1
    # A role that may not append (none does today: this database takes the right away).
    await pool.execute(
        "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'append'"
    )
    with pytest.raises(NotPermitted):
        await events.append_conversation_events(
            pool, user_id=bob.id, conversation_id=conv.id, events=drafts("x")
        )
    # a worker (no user) reads and writes any task's log
    await events.append_task_events(pool, task_id=task.id, events=drafts("plan"))
    unscoped = await events.list_task_events(pool, user_id=None, task_id=task.id)
    assert [e.type for e in unscoped.items] == ["status", "plan"]
    with pytest.raises(NotFound):
        await events.append_task_events(pool, task_id=conv.id, events=drafts("x"))


async def test_list_events_is_the_unscoped_fan_out_read(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    await events.append_conversation_events(
        pool, user_id=alice.id, conversation_id=conv.id, events=drafts("a", "b", "c")
    )
    got = await events.list_events(pool, log="conversation", log_id=conv.id, after=1, limit=1)
    assert [(e.seq, e.type) for e in got] == [(2, "b")]
    assert await events.list_events(pool, log="task", log_id=conv.id, after=0) == []


async def test_bad_events_are_refused_before_anything_is_written(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    ids = {"user_id": alice.id, "conversation_id": conv.id}
    for bad in ("", "Plan", "1plan", "plan!", "x" * 65, "plan step"):
        with pytest.raises(ValidationError):
            EventDraft(type=bad)
    with pytest.raises(ValidationError):
        EventBatch(events=[])
    with pytest.raises(ValidationError):
        EventBatch(events=drafts(*["a"] * 101))
    with pytest.raises(InvalidInput):
        await events.append_conversation_events(pool, **ids, events=[])
    big = EventDraft(type="big", payload={"x": "y" * 200})
    with pytest.raises(TooLarge) as refused:
        await events.append_conversation_events(pool, **ids, events=[big], max_bytes=100)
    assert refused.value.code == "event_too_large"
    assert (await conversation_log(pool, alice, conv.id)) == []


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Event logs, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    conversation = await run.one("make_conversation", lambda: make_conversation(pool, user))
    task = await run.one(
        "insert_task",
        lambda: tasks.insert_task(pool, user_id=user.id, draft=TaskDraft(kind="ev")),
    )
    ids = {"user_id": user.id, "conversation_id": conversation.id}
    await run(
        [
            (
                "append_conversation_events",
                lambda: events.append_conversation_events(pool, **ids, events=drafts("a", "b")),
            ),
            (
                "append_conversation_events missing",
                lambda: events.append_conversation_events(
                    pool, user_id=user.id, conversation_id=user.id, events=drafts("a")
                ),
            ),
            (
                "append_task_events",
                lambda: events.append_task_events(pool, task_id=task.id, events=drafts("plan")),
            ),
            (
                "append_task_events missing",
                lambda: events.append_task_events(pool, task_id=user.id, events=drafts("plan")),
            ),
            ("list_conversation_events", lambda: events.list_conversation_events(pool, **ids)),
            (
                "list_task_events",
                lambda: events.list_task_events(pool, user_id=user.id, task_id=task.id, after=1),
            ),
            (
                "list_task_events missing",
                lambda: events.list_task_events(pool, user_id=user.id, task_id=user.id),
            ),
            (
                "list_events",
                lambda: events.list_events(pool, log="task", log_id=task.id, after=0),
            ),
        ]
    )


async def test_a_batch_claim_and_completion_log_each_task_once(pool: Any, alice: User) -> None:
    """The status events of a claim or completion of many tasks come from one statement-level
    trigger: each task's own log gets its event, numbered in its own sequence."""
    made = [
        await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="many"))
        for _ in range(5)
    ]
    claimed = await tasks.claim_tasks(pool, kinds=["many"], worker="w", limit=5)
    assert {t.id for t in claimed} == {t.id for t in made}
    done = await tasks.complete_tasks(pool, worker="w", results={t.id: t.title for t in claimed})
    assert len(done) == 5
    for task in made:
        page = await events.list_task_events(pool, user_id=alice.id, task_id=task.id)
        assert [(e.seq, e.payload["status"]) for e in page.items] == [
            (1, "pending"),
            (2, "running"),
            (3, "succeeded"),
        ]
        assert page.last_seq == 3
    # a statement that changes no status (a heartbeat) logs nothing
    other = await tasks.insert_task(pool, user_id=alice.id, draft=TaskDraft(kind="beat"))
    await tasks.claim_tasks(pool, kinds=["beat"], worker="w")
    await tasks.heartbeat_task(pool, task_id=other.id, worker="w")
    page = await events.list_task_events(pool, user_id=alice.id, task_id=other.id)
    assert [e.payload["status"] for e in page.items] == ["pending", "running"]
