"""Agent threads, the caller-scoped gateways and the use cases above them: owner scoping, JSON
state written as LangGraph writes it, JSON views of LangGraph's serialized values, copy, prune,
delete."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import operator
from collections import deque
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypedDict
from uuid import UUID

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import ChannelVersions, empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel, ValidationError

from dal.database import transaction
from dal.errors import Conflict, InvalidInput, NotFound
from dal.gateways import checkpoints, conversations, threads, users
from dal.langgraph import AsyncpgSaver
from dal.langgraph.json_values import json_value
from dal.records.conversations import ConversationDraft
from dal.records.threads import ThreadStateDraft
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import threads as thread_views
from tests.dal.conftest import make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

# --- helpers ------------------------------------------------------------------------------


def draft(values: dict[str, Any], **fields: Any) -> ThreadStateDraft:
    return ThreadStateDraft(values=values, **fields)


async def put(pool: Any, user: User, thread_id: str, values: dict[str, Any], **fields: Any) -> str:
    saved = await thread_views.put_thread_state(
        pool, user_id=user.id, thread_id=thread_id, draft=draft(values, **fields)
    )
    return saved.checkpoint_id


async def count(pool: Any, sql: str, *args: Any) -> int:
    return int(await pool.fetchval(sql, *args))


def config(thread_id: str, user: User | None = None, **extra: Any) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": "", **extra}
    if user is not None:
        configurable["user_id"] = str(user.id)
    return {"configurable": configurable}


async def saver_put(
    saver: AsyncpgSaver,
    thread_id: str,
    values: dict[str, Any],
    *,
    user: User | None = None,
    parent: str | None = None,
    step: int = 0,
) -> str:
    """Save a checkpoint through LangGraph's saver interface, as a graph would."""
    checkpoint_id = f"1f0{step:05d}-0000-6000-8000-000000000000"
    versions: ChannelVersions = {c: saver.get_next_version(None, None) for c in values}
    cfg = config(thread_id, user, **({"checkpoint_id": parent} if parent else {}))
    saved = await saver.aput(
        cfg,  # type: ignore[arg-type]
        {
            "v": 4,
            "id": checkpoint_id,
            "ts": "2026-11-23T10:00:00+00:00",
            "channel_values": values,
            "channel_versions": versions,
            "versions_seen": {},
            "updated_channels": sorted(values),
        },
        {"source": "loop", "step": step, "parents": {}},
        versions,
    )
    return str(saved["configurable"]["checkpoint_id"])


# --- PUT state: the JSON checkpoint store -------------------------------------------------


async def test_put_thread_state_new_thread_is_created_for_the_caller(
    pool: Any, alice: User
) -> None:
    await put(pool, alice, "t-1", {"count": 1})

    thread = await threads.get_thread(pool, user_id=alice.id, thread_id="t-1")
    assert (thread.user_id, thread.conversation_id, thread.metadata) == (alice.id, None, {})


async def test_put_thread_state_saver_reads_the_values_back(pool: Any, alice: User) -> None:
    values = {"todo": [{"task": "write", "done": False}], "count": 3, "name": "é", "none": None}
    checkpoint_id = await put(pool, alice, "t-1", values, metadata={"agent": "planner"})

    got = await AsyncpgSaver(pool).aget_tuple(config("t-1", alice))  # type: ignore[arg-type]

    assert got is not None
    assert got.checkpoint["channel_values"] == values
    assert got.checkpoint["id"] == checkpoint_id
    assert got.checkpoint["v"] == 4
    assert got.checkpoint["versions_seen"] == {}
    assert got.checkpoint["updated_channels"] == sorted(values)
    assert set(got.checkpoint["channel_versions"]) == set(values)
    assert got.metadata == {"agent": "planner", "source": "update", "step": 0, "parents": {}}
    assert got.parent_config is None
    assert got.pending_writes == []


async def test_put_thread_state_stores_values_inline_or_as_blobs_as_the_saver_does(
    pool: Any, alice: User
) -> None:
    values = {
        "n": 1,
        "x": 1.5,
        "s": "text",
        "none": None,
        "yes": True,
        "nul": "a\x00b",  # jsonb cannot hold it: a blob, as the saver stores it
        "items": [1],
        "object": {"k": "v"},
    }
    saver = AsyncpgSaver(pool)
    await put(pool, alice, "http", values)
    await saver_put(saver, "saver", values, user=alice)

    for thread_id in ("http", "saver"):
        inline = await pool.fetchval(
            "SELECT checkpoint -> 'channel_values' FROM checkpoints WHERE thread_id = $1",
            thread_id,
        )
        blobs = await pool.fetch(
            "SELECT channel FROM checkpoint_blobs WHERE thread_id = $1", thread_id
        )
        assert set(inline) == {"n", "x", "s", "none", "yes"}, thread_id
        assert {row["channel"] for row in blobs} == {"nul", "items", "object"}, thread_id
        got = await saver.aget_tuple(config(thread_id, alice))  # type: ignore[arg-type]
        assert got is not None and got.checkpoint["channel_values"] == values
        state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id=thread_id)
        assert state.values == values


async def test_put_thread_state_chains_to_the_newest_checkpoint(pool: Any, alice: User) -> None:
    first = await put(pool, alice, "t-1", {"n": 1, "items": [1]})
    second = await put(pool, alice, "t-1", {"n": 2})
    saver = AsyncpgSaver(pool)

    got = await saver.aget_tuple(config("t-1", alice))  # type: ignore[arg-type]

    assert got is not None and got.parent_config is not None
    assert second > first  # ids sort like LangGraph's: newest last
    assert got.parent_config["configurable"]["checkpoint_id"] == first
    assert got.checkpoint["channel_values"] == {"n": 2}  # the state is replaced, not merged
    assert got.metadata["step"] == 1
    before = await saver.aget_tuple(
        config("t-1", alice, checkpoint_id=first)  # type: ignore[arg-type]
    )
    assert before is not None
    [old_version] = set(before.checkpoint["channel_versions"].values())
    [new_version] = set(got.checkpoint["channel_versions"].values())
    # Versions grow as LangGraph's do (the saver's format: "<counter>.<random>").
    assert int(str(new_version).split(".")[0]) == int(str(old_version).split(".")[0]) + 1


async def test_put_thread_state_namespaces_are_separate(pool: Any, alice: User) -> None:
    root = await put(pool, alice, "t-1", {"n": 1})
    sub = await put(pool, alice, "t-1", {"n": 2}, checkpoint_ns="child:1")

    state = await thread_views.get_thread_state(
        pool, user_id=alice.id, thread_id="t-1", checkpoint_ns="child:1"
    )

    assert (state.checkpoint_id, state.parent_checkpoint_id, state.values) == (sub, None, {"n": 2})
    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="t-1")
    assert (state.checkpoint_id, state.values) == (root, {"n": 1})


async def test_put_thread_state_graph_continuing_the_thread_keeps_unchanged_channels(
    pool: Any, alice: User
) -> None:
    class State(TypedDict):
        items: list[int]
        log: Annotated[list[str], operator.add]
        n: int

    def step(state: State) -> dict[str, Any]:
        return {"n": state["n"] + 1, "log": ["step"]}

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    graph = builder.compile(checkpointer=AsyncpgSaver(pool))
    await put(pool, alice, "t-1", {"items": [1, 2], "log": ["put"], "n": 5})

    result = await graph.ainvoke({"n": 7}, config("t-1", alice))  # type: ignore[call-overload]

    # "items" is not touched by the run: it must survive it (a checkpoint only stores a
    # non-scalar value again when its version changes).
    assert result == {"items": [1, 2], "log": ["put", "step"], "n": 8}
    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="t-1")
    assert state.values["items"] == [1, 2]
    assert state.values["log"] == ["put", "step"]
    assert state.metadata["source"] == "loop"


async def test_put_thread_state_concurrent_writes_form_one_chain(pool: Any, alice: User) -> None:
    await put(pool, alice, "t-1", {"n": 0})

    await asyncio.gather(*(put(pool, alice, "t-1", {"n": i}) for i in range(1, 9)))

    history = await thread_views.list_thread_history(pool, user_id=alice.id, thread_id="t-1")
    items = history.items
    assert len(items) == 9
    # Each checkpoint's parent is the one just older: the writes queued on the thread row.
    for newer, older in zip(items, items[1:], strict=False):
        assert newer.parent_checkpoint_id == older.checkpoint_id
    assert [item.metadata["step"] for item in items] == list(range(8, -1, -1))


async def test_put_thread_state_same_id_as_other_users_thread_is_the_callers_own_thread(
    pool: Any, alice: User, bob: User
) -> None:
    await put(pool, alice, "main", {"n": 1})

    await put(pool, bob, "main", {"n": 666})
    await put(pool, alice, "main", {"n": 2})

    mine = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="main")
    theirs = await thread_views.get_thread_state(pool, user_id=bob.id, thread_id="main")
    assert (mine.values, theirs.values) == ({"n": 2}, {"n": 666})
    assert theirs.parent_checkpoint_id is None  # not chained to alice's checkpoints
    history = await thread_views.list_thread_history(pool, user_id=alice.id, thread_id="main")
    assert [item.values for item in history.items] == [{"n": 2}, {"n": 1}]
    listed = await threads.list_threads(pool, user_id=bob.id)
    assert [(t.thread_id, t.user_id) for t in listed.items] == [("main", bob.id)]


async def test_update_thread_of_user_replaces_the_metadata_of_that_owners_thread_only(
    pool: Any, alice: User, bob: User
) -> None:
    await put(pool, alice, "main", {"n": 1})
    await put(pool, bob, "main", {"n": 2})
    saver = AsyncpgSaver(pool)
    await saver_put(saver, "main", {"n": 3})  # nobody's: the nil UUID owns it
    before = await threads.get_thread(pool, user_id=alice.id, thread_id="main")

    changed = await threads.update_thread_of_user(
        pool, user_id=alice.id, thread_id="main", metadata={"retention": {"ttl_days": None}}
    )
    assert changed.metadata == {"retention": {"ttl_days": None}}
    assert changed.updated_at >= before.updated_at and changed.created_at == before.created_at
    assert (await threads.get_thread(pool, user_id=bob.id, thread_id="main")).metadata == {}
    assert await threads.update_thread_metadata_of_owner(
        pool, owner=UUID(int=0), thread_id="main", metadata={"k": 1}
    )
    assert not await threads.update_thread_metadata_of_owner(
        pool, owner=UUID(int=0), thread_id="none", metadata={"k": 1}
    )
    nobodys = await pool.fetchval(
        "SELECT metadata FROM threads WHERE thread_id = 'main' AND owner = $1", UUID(int=0)
    )
    assert nobodys == {"k": 1}
    assert (await threads.get_thread(pool, user_id=alice.id, thread_id="main")).metadata == {
        "retention": {"ttl_days": None}
    }
    with pytest.raises(NotFound):
        await threads.update_thread_of_user(pool, user_id=bob.id, thread_id="other", metadata={})


async def test_put_thread_state_same_id_as_thread_nobody_owns_leaves_it_alone(
    pool: Any, alice: User
) -> None:
    saver = AsyncpgSaver(pool)
    await saver_put(saver, "anon", {"n": 1})  # a saver config without user_id
    with pytest.raises(NotFound):
        await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="anon")

    await put(pool, alice, "anon", {"n": 2})

    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="anon")
    assert state.values == {"n": 2} and state.parent_checkpoint_id is None
    nobodys = await saver.aget_tuple(config("anon"))  # type: ignore[arg-type]
    assert nobodys is not None and nobodys.checkpoint["channel_values"] == {"n": 1}
    assert await count(pool, "SELECT count(*) FROM checkpoints WHERE thread_id = 'anon'") == 2


async def test_put_thread_state_links_the_callers_conversation(pool: Any, alice: User) -> None:
    conversation = await conversations.insert_conversation(
        pool, user_id=alice.id, draft=ConversationDraft()
    )
    await put(pool, alice, "t-1", {"n": 1}, conversation_id=conversation.id)
    await put(pool, alice, "t-1", {"n": 2})  # no conversation_id: the link stays

    thread = await threads.get_thread(pool, user_id=alice.id, thread_id="t-1")
    assert thread.conversation_id == conversation.id


async def test_put_thread_state_with_other_users_conversation_raises_not_found(
    pool: Any, alice: User, bob: User
) -> None:
    theirs = await conversations.insert_conversation(
        pool, user_id=bob.id, draft=ConversationDraft()
    )

    with pytest.raises(NotFound, match="conversation"):
        await put(pool, alice, "t-1", {"n": 1}, conversation_id=theirs.id)

    assert await count(pool, "SELECT count(*) FROM threads") == 0


@pytest.mark.parametrize(
    ("values", "fields", "message"),
    [
        ({"n": 1}, {"metadata": {"step": 3}}, "step are set by the server"),
        ({"n": 1}, {"metadata": {"source": "x", "parents": {}}}, "parents, source"),
        ({"n": 2**64}, {}, "64-bit"),
        ({"deep": {"n": [2**64]}}, {}, "64-bit"),
    ],
    ids=["reserved-step", "reserved-source-parents", "big-int-inline", "big-int-nested"],
)
async def test_put_thread_state_bad_values_raise_invalid_input_and_write_nothing(
    pool: Any, alice: User, values: dict[str, Any], fields: dict[str, Any], message: str
) -> None:
    # Integers past 64 bits are refused by the draft itself (dal.records), the rest by the
    # gateway.
    with pytest.raises((InvalidInput, ValidationError), match=message):
        await put(pool, alice, "t-1", values, **fields)

    assert await count(pool, "SELECT count(*) FROM threads") == 0


async def test_put_thread_state_thread_id_over_500_bytes_raises_invalid_input(
    pool: Any, alice: User
) -> None:
    with pytest.raises(InvalidInput, match="500 bytes"):
        await put(pool, alice, "線" * 167, {"n": 1})  # 501 bytes in UTF-8
    await put(pool, alice, "線" * 166, {"n": 1})  # 498 bytes: fine


async def test_put_thread_state_after_a_checkpoint_from_the_future_raises_conflict(
    pool: Any, alice: User
) -> None:
    saver = AsyncpgSaver(pool)
    await saver_put(saver, "t-1", {"n": 1}, user=alice, step=0)
    await pool.execute("UPDATE checkpoints SET checkpoint_id = 'ffffffff-0000-6000-8000-0'")

    with pytest.raises(Conflict, match="clock"):
        await put(pool, alice, "t-1", {"n": 2})

    assert await count(pool, "SELECT count(*) FROM checkpoints") == 1


# --- reading: JSON views of checkpoints ---------------------------------------------------


async def test_get_thread_state_decodes_langgraph_values_and_writes_to_json(
    pool: Any, alice: User
) -> None:
    saver = AsyncpgSaver(pool)
    when = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    checkpoint_id = await saver_put(
        saver,
        "lg",
        {
            "messages": [HumanMessage("hi", id="m1")],
            "when": when,
            "tags": {"b", "a"},
            "n": 3,
        },
        user=alice,
    )
    await saver.aput_writes(
        config("lg", alice, checkpoint_id=checkpoint_id),  # type: ignore[arg-type]
        [("messages", [AIMessage("hello", id="m2")]), ("__pregel_tasks", Send("node", {"x": 1}))],
        task_id="task-1",
    )

    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="lg")

    assert state.checkpoint_id == checkpoint_id
    assert state.created_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    messages = state.values["messages"]
    assert isinstance(messages, list) and len(messages) == 1
    message = messages[0]
    assert isinstance(message, dict)
    assert (message["type"], message["content"], message["id"]) == ("human", "hi", "m1")
    assert state.values["when"] == "2026-11-23T10:30:00+00:00"
    assert state.values["tags"] == ["a", "b"]
    assert state.values["n"] == 3
    [reply, send] = state.pending_writes
    assert (reply.task_id, reply.channel) == ("task-1", "messages")
    assert isinstance(reply.value, list) and isinstance(reply.value[0], dict)
    assert (reply.value[0]["type"], reply.value[0]["content"]) == ("ai", "hello")
    assert send.value == {"node": "node", "arg": {"x": 1}, "timeout": None}


async def test_get_thread_state_undecodable_blob_shows_its_type_and_bytes(
    pool: Any, alice: User
) -> None:
    await put(pool, alice, "t-1", {"doc": {"a": 1}})
    await pool.execute("UPDATE checkpoint_blobs SET type = 'pickle', blob = '\\x0102'::bytea")

    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="t-1")

    assert state.values == {"doc": {"undecodable": True, "type": "pickle", "data": "AQI="}}


async def test_get_thread_state_without_checkpoint_raises_not_found(pool: Any, alice: User) -> None:
    await put(pool, alice, "t-1", {"n": 1})
    await thread_views.prune_thread(pool, user_id=alice.id, thread_id="t-1", strategy="delete")

    with pytest.raises(NotFound):
        await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="t-1")
    with pytest.raises(NotFound):
        await thread_views.get_thread_state(
            pool, user_id=alice.id, thread_id="t-1", checkpoint_ns="x"
        )
    with pytest.raises(NotFound):
        await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="missing")


async def test_list_thread_history_filters_by_metadata_and_pages_before(
    pool: Any, alice: User
) -> None:
    ids = [
        await put(pool, alice, "t-1", {"n": i}, metadata={"kind": "even" if i % 2 == 0 else "odd"})
        for i in range(6)
    ]
    history = await thread_views.list_thread_history(
        pool, user_id=alice.id, thread_id="t-1", limit=2
    )
    assert [s.checkpoint_id for s in history.items] == [ids[5], ids[4]]

    older = await thread_views.list_thread_history(
        pool, user_id=alice.id, thread_id="t-1", limit=2, before=ids[4]
    )
    assert [s.checkpoint_id for s in older.items] == [ids[3], ids[2]]

    even = await thread_views.list_thread_history(
        pool, user_id=alice.id, thread_id="t-1", metadata_filter={"kind": "even"}
    )
    assert [s.values["n"] for s in even.items] == [4, 2, 0]
    even_before = await thread_views.list_thread_history(
        pool, user_id=alice.id, thread_id="t-1", metadata_filter={"kind": "even"}, before=ids[4]
    )
    assert [s.values["n"] for s in even_before.items] == [2, 0]


@pytest.mark.parametrize("limit", [0, 201])
async def test_list_thread_history_limit_out_of_range_raises_invalid_input(
    pool: Any, alice: User, limit: int
) -> None:
    await put(pool, alice, "t-1", {"n": 1})
    with pytest.raises(InvalidInput):
        await thread_views.list_thread_history(pool, user_id=alice.id, thread_id="t-1", limit=limit)


async def test_list_threads_pages_by_keyset_newest_update_first(
    pool: Any, alice: User, bob: User
) -> None:
    for i in range(7):
        await put(pool, alice, f"a-{i}", {"n": i})
    await put(pool, bob, "b-0", {"n": 0})
    await put(pool, alice, "a-2", {"n": 99})  # updated last: comes first

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await threads.list_threads(pool, user_id=alice.id, limit=3, cursor=cursor)
        seen += [t.thread_id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == ["a-2", "a-6", "a-5", "a-4", "a-3", "a-1", "a-0"]
    assert [t.thread_id for t in (await threads.list_threads(pool, user_id=bob.id)).items] == [
        "b-0"
    ]


@pytest.mark.parametrize("cursor", ["nope", "WyJ4IiwgMV0", ""])
async def test_list_threads_bad_cursor_raises_invalid_input(
    pool: Any, alice: User, cursor: str
) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        await threads.list_threads(pool, user_id=alice.id, cursor=cursor)


async def test_conversation_cursor_keeps_its_behaviour_after_the_move(
    pool: Any, alice: User
) -> None:
    made = await conversations.insert_conversation(
        pool, user_id=alice.id, draft=ConversationDraft()
    )
    cursor = conversations.encode_cursor(made)
    assert conversations.decode_cursor(cursor) == (made.updated_at, made.id)
    await put(pool, alice, "t-1", {"n": 1})
    thread = await threads.get_thread(pool, user_id=alice.id, thread_id="t-1")
    with pytest.raises(InvalidInput, match="cursor"):  # a thread id is not a conversation id
        conversations.decode_cursor(threads.encode_cursor(thread))


# --- copy, prune, delete ------------------------------------------------------------------


async def test_copy_thread_copies_every_checkpoint_to_a_new_thread_of_the_caller(
    pool: Any, alice: User
) -> None:
    ids = [await put(pool, alice, "src", {"n": i}) for i in range(3)]

    copied = await thread_views.copy_thread(
        pool, user_id=alice.id, thread_id="src", target_thread_id="dst"
    )

    assert (copied.thread_id, copied.copied) == ("dst", 3)
    history = await thread_views.list_thread_history(pool, user_id=alice.id, thread_id="dst")
    assert [s.checkpoint_id for s in history.items] == ids[::-1]
    assert (await threads.get_thread(pool, user_id=alice.id, thread_id="dst")).user_id == alice.id


async def test_copy_thread_latest_only_copies_the_newest_checkpoint_as_a_root(
    pool: Any, alice: User
) -> None:
    ids = [await put(pool, alice, "src", {"items": [i]}) for i in range(3)]

    copied = await thread_views.copy_thread(
        pool, user_id=alice.id, thread_id="src", target_thread_id="dst", latest_only=True
    )

    assert copied.copied == 1
    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="dst")
    assert (state.checkpoint_id, state.parent_checkpoint_id, state.values) == (
        ids[2],
        None,
        {"items": [2]},
    )


async def test_copy_thread_to_an_existing_thread_of_the_caller_raises_conflict(
    pool: Any, alice: User, bob: User
) -> None:
    await put(pool, alice, "src", {"n": 1})
    await put(pool, alice, "mine", {"n": 2})
    await put(pool, bob, "theirs", {"n": 3})

    for target in ("mine", "src"):
        with pytest.raises(Conflict, match="already exists"):
            await thread_views.copy_thread(
                pool, user_id=alice.id, thread_id="src", target_thread_id=target
            )
    assert await count(pool, "SELECT count(*) FROM checkpoints") == 3

    # Another user's thread id is no obstacle: the copy is alice's own thread "theirs".
    await thread_views.copy_thread(
        pool, user_id=alice.id, thread_id="src", target_thread_id="theirs"
    )
    mine = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="theirs")
    state = await thread_views.get_thread_state(pool, user_id=bob.id, thread_id="theirs")
    assert (mine.values, state.values) == ({"n": 1}, {"n": 3})


async def test_copy_thread_of_other_users_thread_raises_not_found_and_creates_nothing(
    pool: Any, alice: User, bob: User
) -> None:
    await put(pool, alice, "src", {"n": 1})

    with pytest.raises(NotFound):
        await thread_views.copy_thread(
            pool, user_id=bob.id, thread_id="src", target_thread_id="dst"
        )

    assert await count(pool, "SELECT count(*) FROM threads WHERE thread_id = 'dst'") == 0


async def test_prune_thread_keep_latest_keeps_the_newest_checkpoint_of_each_namespace(
    pool: Any, alice: User
) -> None:
    ids = [await put(pool, alice, "t-1", {"items": [i]}) for i in range(4)]
    await put(pool, alice, "t-1", {"n": 1}, checkpoint_ns="sub")

    pruned = await thread_views.prune_thread(
        pool, user_id=alice.id, thread_id="t-1", strategy="keep_latest"
    )

    assert pruned.deleted == 3
    state = await thread_views.get_thread_state(pool, user_id=alice.id, thread_id="t-1")
    assert (state.checkpoint_id, state.parent_checkpoint_id, state.values) == (
        ids[3],
        None,
        {"items": [3]},
    )
    assert await count(pool, "SELECT count(*) FROM checkpoint_blobs") == 1  # only [3]'s


async def test_prune_thread_delete_deletes_every_checkpoint_and_keeps_the_thread(
    pool: Any, alice: User
) -> None:
    for i in range(3):
        await put(pool, alice, "t-1", {"items": [i]})

    pruned = await thread_views.prune_thread(
        pool, user_id=alice.id, thread_id="t-1", strategy="delete"
    )

    assert pruned.deleted == 3
    assert await threads.get_thread(pool, user_id=alice.id, thread_id="t-1")
    assert await count(pool, "SELECT count(*) FROM checkpoint_blobs") == 0


async def test_prune_thread_keep_latest_with_delta_channel_raises_conflict(
    pool: Any, alice: User
) -> None:
    await put(pool, alice, "t-1", {"n": 1}, metadata={"counters_since_delta_snapshot": {}})
    await put(pool, alice, "t-1", {"n": 2})

    with pytest.raises(Conflict, match="DeltaChannel"):
        await thread_views.prune_thread(
            pool, user_id=alice.id, thread_id="t-1", strategy="keep_latest"
        )

    assert await count(pool, "SELECT count(*) FROM checkpoints") == 2


async def test_prune_thread_bad_strategy_raises_invalid_input(pool: Any, alice: User) -> None:
    await put(pool, alice, "t-1", {"n": 1})
    with pytest.raises(InvalidInput, match="strategy"):
        await thread_views.prune_thread(pool, user_id=alice.id, thread_id="t-1", strategy="all")


async def test_other_users_thread_raises_not_found_everywhere_and_stays(
    pool: Any, alice: User, bob: User
) -> None:
    checkpoint_id = await put(pool, alice, "t-1", {"n": 1})
    await put(pool, alice, "t-1", {"n": 2})

    with pytest.raises(NotFound):
        await threads.get_thread(pool, user_id=bob.id, thread_id="t-1")
    with pytest.raises(NotFound):
        await thread_views.get_thread_state(pool, user_id=bob.id, thread_id="t-1")
    with pytest.raises(NotFound):
        await thread_views.get_thread_state(
            pool, user_id=bob.id, thread_id="t-1", checkpoint_id=checkpoint_id
        )
    with pytest.raises(NotFound):
        await thread_views.list_thread_history(pool, user_id=bob.id, thread_id="t-1")
    for strategy in ("keep_latest", "delete"):
        with pytest.raises(NotFound):
            await thread_views.prune_thread(
                pool, user_id=bob.id, thread_id="t-1", strategy=strategy
            )
    with pytest.raises(NotFound):
        await threads.delete_thread_of_user(pool, user_id=bob.id, thread_id="t-1")
    assert (await threads.list_threads(pool, user_id=bob.id)).items == []

    history = await thread_views.list_thread_history(pool, user_id=alice.id, thread_id="t-1")
    assert [s.values for s in history.items] == [{"n": 2}, {"n": 1}]


async def test_delete_thread_deletes_its_checkpoints(pool: Any, alice: User) -> None:
    await put(pool, alice, "t-1", {"items": [1]})

    await threads.delete_thread_of_user(pool, user_id=alice.id, thread_id="t-1")

    for table in ("threads", "checkpoints", "checkpoint_blobs"):
        assert await count(pool, f"SELECT count(*) FROM {table}") == 0
    with pytest.raises(NotFound):
        await threads.delete_thread_of_user(pool, user_id=alice.id, thread_id="t-1")


async def test_deleting_a_user_deletes_their_threads_checkpoints_blobs_and_writes(
    pool: Any, alice: User, bob: User
) -> None:
    saver = AsyncpgSaver(pool)

    class Items(TypedDict):
        items: Annotated[list[int], operator.add]

    for user in (alice, bob):
        graph = StateGraph(Items)
        graph.add_node("add", lambda state: {"items": [1]})
        graph.add_edge(START, "add")
        graph.add_edge("add", END)
        compiled = graph.compile(checkpointer=saver)
        await compiled.ainvoke({"items": [0]}, config(f"t-{user.username}", user))
    tables = ("threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
    before = {t: await count(pool, f"SELECT count(*) FROM {t}") for t in tables}
    assert all(before.values()), before

    # No route deletes users; the foreign key's cascade reaches the threads, and the trigger
    # on threads the rest.
    await pool.execute("DELETE FROM users WHERE id = $1", alice.id)

    for table in tables:
        left = await count(pool, f"SELECT count(*) FROM {table} WHERE thread_id = 't-alice'")
        assert left == 0, table
        assert await count(pool, f"SELECT count(*) FROM {table}") > 0, table  # bob's stay


# --- json_value ---------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    label: str
    at: date


class Model(BaseModel):
    id: UUID
    when: datetime


def test_json_value_converts_python_values_to_json() -> None:
    uid = UUID("01234567-89ab-7def-8123-456789abcdef")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        "uuid": uid,
        "when": when,
        "bytes": b"\x00\xff",
        "set": {3, 1, 2},
        "mixed_set": {1, "a"},
        "tuple": (1, "a"),
        "deque": deque([1, 2]),
        "point": Point(1, 2),
        "box": Box("b", date(2026, 1, 2)),
        "model": Model(id=uid, when=when),
        "enum": Color.RED,
        "decimal": Decimal("1.50"),
        "nan": math.nan,
        "inf": -math.inf,
        "big": 2**70,
        1: "int key",
        "object": object,
    }

    converted = json_value(value)

    assert isinstance(converted, dict)
    assert converted["uuid"] == str(uid)
    assert converted["when"] == "2026-01-02T03:04:05+00:00"
    assert converted["bytes"] == "AP8="
    assert converted["set"] == [1, 2, 3]
    assert sorted(map(str, converted["mixed_set"])) == ["1", "a"]  # type: ignore[arg-type]
    assert converted["tuple"] == [1, "a"]
    assert converted["deque"] == [1, 2]
    assert converted["point"] == {"x": 1, "y": 2}
    assert converted["box"] == {"label": "b", "at": "2026-01-02"}
    assert converted["model"] == {"id": str(uid), "when": "2026-01-02T03:04:05Z"}
    assert converted["enum"] == "red"
    assert converted["decimal"] == "1.50"
    assert (converted["nan"], converted["inf"]) == ("nan", "-inf")
    assert converted["big"] == 2**70
    assert converted["1"] == "int key"
    assert converted["object"] == "<class 'object'>"


# --- races: prune and copy against state writes -------------------------------------------

DANGLING = """
    SELECT count(*)
      FROM checkpoints AS c
     WHERE c.parent_checkpoint_id IS NOT NULL
       AND NOT EXISTS (
            SELECT 1 FROM checkpoints AS p
             WHERE p.thread_id = c.thread_id AND p.owner = c.owner
               AND p.checkpoint_ns = c.checkpoint_ns
               AND p.checkpoint_id = c.parent_checkpoint_id)
"""


@pytest.mark.parametrize("via", ["http", "saver"])
@pytest.mark.parametrize("strategy", ["keep_latest", "delete"])
async def test_prune_racing_put_thread_state_leaves_no_dangling_parent(
    pool: Any, alice: User, strategy: str, via: str
) -> None:
    saver = AsyncpgSaver(pool, user_id=alice.id)
    for round_ in range(30):
        thread_id = f"race-{round_}"
        await put(pool, alice, thread_id, {"n": 0})

        async def prune(thread_id: str = thread_id) -> None:
            if via == "saver":
                await saver.aprune([thread_id], strategy=strategy)
                return
            await thread_views.prune_thread(
                pool, user_id=alice.id, thread_id=thread_id, strategy=strategy
            )

        await asyncio.gather(
            *(put(pool, alice, thread_id, {"n": i}) for i in range(1, 4)), prune(), prune()
        )
        assert await count(pool, DANGLING) == 0, f"round {round_}"
        # Whatever survived still chains: the newest checkpoint's ancestors are all there.
        history = await thread_views.list_thread_history(
            pool, user_id=alice.id, thread_id=thread_id
        )
        for newer, older in zip(history.items, history.items[1:], strict=False):
            assert newer.parent_checkpoint_id == older.checkpoint_id


async def test_copy_racing_put_thread_state_leaves_no_dangling_parent(
    pool: Any, alice: User
) -> None:
    for round_ in range(30):
        source, target = f"src-{round_}", f"dst-{round_}"
        await put(pool, alice, source, {"n": 0})

        async def copy(latest_only: bool, source: str = source, target: str = target) -> None:
            try:
                await thread_views.copy_thread(
                    pool,
                    user_id=alice.id,
                    thread_id=source,
                    target_thread_id=target,
                    latest_only=latest_only,
                )
            except Conflict:
                pass  # the target was created first by a write or the other copy

        await asyncio.gather(
            put(pool, alice, source, {"n": 1}),
            put(pool, alice, target, {"n": 1}),
            copy(round_ % 2 == 0),
            put(pool, alice, target, {"n": 2}),
            put(pool, alice, source, {"n": 2}),
        )
        assert await count(pool, DANGLING) == 0, f"round {round_}"


# --- tests/test_session_state.py ----------------------------------------------------------


async def collect(generator: Any) -> list[Any]:
    return [item async for item in generator]


async def locked(pool: Any, user_id: Any, thread_id: str) -> None:
    async with transaction(pool) as conn:
        await threads.get_thread_locked(conn, user_id=user_id, thread_id=thread_id)
        await users.get_user_locked(conn, user_id=user_id)


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Threads and checkpoints, for tests/test_session_state.py: through the saver (its group
    commit included), the use cases (repeatable-read snapshots) and the gateways they do not
    reach."""
    user = await run.one("make_user", lambda: make_user(pool))
    uid = user.id
    conv = await run.one(
        "insert_conversation",
        lambda: conversations.insert_conversation(pool, user_id=uid, draft=ConversationDraft()),
    )
    cid = conv.id
    saver = AsyncpgSaver(pool, database_url=settings.database_url, user_id=uid)
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"n": 1}
    checkpoint["channel_versions"] = versions = {"n": saver.get_next_version(None, None)}
    saved = await run.one(
        "aput",
        lambda: saver.aput(config("t1"), checkpoint, {"step": 1, "run_id": "r1"}, versions),
    )
    head = saved["configurable"]["checkpoint_id"]
    state = ThreadStateDraft(values={"n": 2})
    await run(
        [
            ("setup", saver.setup),
            ("aput_writes", lambda: saver.aput_writes(saved, [("n", 3)], task_id="task-1")),
            ("aget_tuple", lambda: saver.aget_tuple(config("t1"))),
            (
                "aget_tuple by id",
                lambda: saver.aget_tuple(config("t1", checkpoint_id=head)),
            ),
            # Each of list_checkpoints' access paths.
            ("alist", lambda: collect(saver.alist(config("t1")))),
            ("alist thread", lambda: collect(saver.alist({"configurable": {"thread_id": "t1"}}))),
            (
                "alist by metadata",
                lambda: collect(saver.alist(config("t1"), filter={"step": 1})),
            ),
            (
                "alist by id",
                lambda: collect(saver.alist(config("t1", checkpoint_id=head))),
            ),
            (
                "alist before",
                lambda: collect(saver.alist(None, before=config("t1", checkpoint_id=head))),
            ),
            ("alist filter", lambda: collect(saver.alist(None, filter={"step": 1}, limit=2))),
            (
                "aget_delta_channel_history",
                lambda: saver.aget_delta_channel_history(
                    config=config("t1", checkpoint_id=head),
                    channels=["n"],
                ),
            ),
            (
                "put_thread_state",
                lambda: thread_views.put_thread_state(
                    pool, user_id=uid, thread_id="t2", draft=state
                ),
            ),
            (
                "get_thread_state",
                lambda: thread_views.get_thread_state(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "get_thread_state missing",
                lambda: thread_views.get_thread_state(pool, user_id=uid, thread_id="none"),
            ),
            (
                "list_thread_history",
                lambda: thread_views.list_thread_history(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "copy_thread",
                lambda: thread_views.copy_thread(
                    pool, user_id=uid, thread_id="t2", target_thread_id="t3"
                ),
            ),
            (
                "copy_thread taken",
                lambda: thread_views.copy_thread(
                    pool, user_id=uid, thread_id="t2", target_thread_id="t3"
                ),
            ),
            (
                "prune_thread",
                lambda: thread_views.prune_thread(
                    pool, user_id=uid, thread_id="t3", strategy="keep_latest"
                ),
            ),
            ("get_thread", lambda: threads.get_thread(pool, user_id=uid, thread_id="t1")),
            (
                "update_thread_of_user",
                lambda: threads.update_thread_of_user(
                    pool, user_id=uid, thread_id="t1", metadata={"retention": {"ttl_days": 9}}
                ),
            ),
            (
                "update_thread_metadata_of_owner",
                lambda: threads.update_thread_metadata_of_owner(
                    pool, owner=uid, thread_id="t1", metadata={}
                ),
            ),
            (
                "update_thread_of_user missing",
                lambda: threads.update_thread_of_user(
                    pool, user_id=uid, thread_id="nope", metadata={}
                ),
            ),
            ("list_threads", lambda: threads.list_threads(pool, user_id=uid)),
            (
                "upsert_thread_of_user",
                lambda: threads.upsert_thread_of_user(
                    pool, user_id=uid, thread_id="t4", conversation_id=cid
                ),
            ),
            ("get_thread_locked", lambda: locked(pool, uid, "t4")),
            (
                "get_checkpoint",
                lambda: checkpoints.get_checkpoint(
                    pool, owner=saver.owner, thread_id="t1", checkpoint_ns="", checkpoint_id=head
                ),
            ),
            ("acopy_thread", lambda: saver.acopy_thread("t1", "t5")),
            ("aprune keep_latest", lambda: saver.aprune(["t5"])),
            ("aprune delete", lambda: saver.aprune(["t5"], strategy="delete")),
            ("adelete_for_runs", lambda: saver.adelete_for_runs(["r1"])),
            ("adelete_thread", lambda: saver.adelete_thread("t3")),
            (
                "delete_thread_of_user",
                lambda: threads.delete_thread_of_user(pool, user_id=uid, thread_id="t2"),
            ),
            (
                "delete_thread_of_user missing",
                lambda: threads.delete_thread_of_user(pool, user_id=uid, thread_id="t2"),
            ),
        ]
    )
