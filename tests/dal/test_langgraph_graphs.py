"""Real LangGraph graphs (no LLM) on AsyncpgSaver: crash and resume, human in the loop, time
travel and forks, subgraphs, parallel branches with a failing node, the sync interface."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, RetryPolicy, interrupt

from dal.database import open_pool
from dal.gateways.checkpoints import NO_OWNER
from dal.langgraph import AsyncpgSaver, owner_of
from dal.settings import Settings


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    messages: Annotated[list[Any], add_messages]


def config(thread_id: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, **extra}}


def three_nodes(calls: dict[str, int], fail_in: set[str]) -> StateGraph[State]:
    """a -> b -> c; each counts its calls; a node in fail_in fails once, then works."""

    def node(name: str) -> Any:
        def run(state: State) -> dict[str, Any]:
            calls[name] = calls.get(name, 0) + 1
            if name in fail_in:
                fail_in.discard(name)
                raise RuntimeError(f"{name} crashed")
            return {"steps": [name], "messages": [AIMessage(content=f"from {name}")]}

        return run

    builder = StateGraph(State)
    for name in "abc":
        builder.add_node(name, node(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder


async def test_graph_resumes_after_crash_from_new_saver_on_new_pool(
    pool: Any, settings: Settings
) -> None:
    calls: dict[str, int] = {}
    graph = three_nodes(calls, fail_in={"b"}).compile(checkpointer=AsyncpgSaver(pool))
    start = {"steps": [], "messages": [HumanMessage(content="hi 👋")]}
    with pytest.raises(RuntimeError, match="b crashed"):
        await graph.ainvoke(start, config("crash"))
    assert calls == {"a": 1, "b": 1}

    # A new process: a new pool, a new saver, the same thread.
    other = await open_pool(settings)
    try:
        resumed = three_nodes(calls, fail_in=set()).compile(checkpointer=AsyncpgSaver(other))
        state = await resumed.aget_state(config("crash"))
        assert state.next == ("b",) and state.values["steps"] == ["a"]
        final = await resumed.ainvoke(None, config("crash"))
    finally:
        await other.close()
    assert final["steps"] == ["a", "b", "c"]
    assert [m.content for m in final["messages"]] == ["hi 👋", "from a", "from b", "from c"]
    assert isinstance(final["messages"][0], HumanMessage)
    assert calls == {"a": 1, "b": 2, "c": 1}  # a was not run again


async def test_interrupt_then_resume_with_command(pool: Any) -> None:
    class Approval(TypedDict):
        request: str
        decision: str

    def ask(state: Approval) -> dict[str, str]:
        answer = interrupt({"question": f"approve {state['request']}?"})
        return {"decision": answer}

    builder = StateGraph(Approval)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    graph = builder.compile(checkpointer=AsyncpgSaver(pool))

    first = await graph.ainvoke({"request": "refund", "decision": ""}, config("hitl"))
    assert first["__interrupt__"][0].value == {"question": "approve refund?"}
    # Hours later, from another saver instance: the interrupt is still pending.
    later = builder.compile(checkpointer=AsyncpgSaver(pool))
    waiting = await later.aget_state(config("hitl"))
    assert waiting.next == ("ask",) and waiting.interrupts
    done = await later.ainvoke(Command(resume="yes"), config("hitl"))
    assert done == {"request": "refund", "decision": "yes"}
    assert (await later.aget_state(config("hitl"))).next == ()


async def test_history_update_state_and_fork(pool: Any) -> None:
    calls: dict[str, int] = {}
    graph = three_nodes(calls, fail_in=set()).compile(checkpointer=AsyncpgSaver(pool))
    await graph.ainvoke({"steps": [], "messages": []}, config("travel"))
    history = [s async for s in graph.aget_state_history(config("travel"))]
    assert [s.values.get("steps") for s in history][:4] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["a"],
        [],
    ]
    ids = [s.config["configurable"]["checkpoint_id"] for s in history]
    assert ids == sorted(ids, reverse=True)  # newest first
    limited = [s async for s in graph.aget_state_history(config("travel"), limit=2)]
    assert [s.config for s in limited] == [s.config for s in history[:2]]
    before = [s async for s in graph.aget_state_history(config("travel"), before=history[1].config)]
    assert [s.config for s in before] == [s.config for s in history[2:]]

    # Fork from the checkpoint after "a": change the state there and run on from it.
    after_a = next(s for s in history if s.values.get("steps") == ["a"])
    forked = await graph.aupdate_state(after_a.config, {"steps": ["edited"]}, as_node="a")
    final = await graph.ainvoke(None, forked)
    assert final["steps"] == ["a", "edited", "b", "c"]
    # The original branch is intact in the history.
    again = [s async for s in graph.aget_state_history(config("travel"))]
    assert history[0].config in [s.config for s in again]
    original = await graph.aget_state(history[0].config)
    assert original.values["steps"] == ["a", "b", "c"]


async def test_subgraph_checkpoints_live_in_their_namespace(pool: Any) -> None:
    class Inner(TypedDict):
        steps: Annotated[list[str], operator.add]

    inner = StateGraph(Inner)
    inner.add_node("inner_step", lambda s: {"steps": ["inner"]})
    inner.add_node("ask", lambda s: {"steps": [interrupt("inner question")]})
    inner.add_edge(START, "inner_step")
    inner.add_edge("inner_step", "ask")
    inner.add_edge("ask", END)

    outer = StateGraph(Inner)
    outer.add_node("before", lambda s: {"steps": ["outer"]})
    outer.add_node("child", inner.compile())
    outer.add_edge(START, "before")
    outer.add_edge("before", "child")
    outer.add_edge("child", END)
    saver = AsyncpgSaver(pool)
    graph = outer.compile(checkpointer=saver)

    await graph.ainvoke({"steps": []}, config("sub"))
    state = await graph.aget_state(config("sub"), subgraphs=True)
    child_state = state.tasks[0].state
    assert child_state is not None and child_state.values["steps"] == ["outer", "inner"]
    namespaces = {
        t.config["configurable"]["checkpoint_ns"]
        async for t in saver.alist({"configurable": {"thread_id": "sub"}})
    }
    assert "" in namespaces and any(ns.startswith("child:") for ns in namespaces)
    final = await graph.ainvoke(Command(resume="answer"), config("sub"))
    # The same flow on LangGraph's in-memory saver (the reference) ends the same way.
    from langgraph.checkpoint.memory import InMemorySaver

    reference = outer.compile(checkpointer=InMemorySaver())
    await reference.ainvoke({"steps": []}, config("sub"))
    assert final == await reference.ainvoke(Command(resume="answer"), config("sub"))
    assert final["steps"][-1] == "answer"


async def test_parallel_branches_keep_pending_writes_and_retry_only_the_failed_node(
    pool: Any,
) -> None:
    calls: dict[str, int] = {}
    broken = {"slow"}

    def branch(name: str) -> Any:
        def run(state: State) -> dict[str, Any]:
            calls[name] = calls.get(name, 0) + 1
            if name in broken:
                raise RuntimeError(f"{name} failed")
            return {"steps": [name]}

        return run

    builder = StateGraph(State)
    builder.add_node("fast", branch("fast"))
    builder.add_node("slow", branch("slow"))
    builder.add_node("join", branch("join"))
    builder.add_edge(START, "fast")
    builder.add_edge(START, "slow")
    builder.add_edge(["fast", "slow"], "join")
    builder.add_edge("join", END)
    saver = AsyncpgSaver(pool)
    graph = builder.compile(checkpointer=saver)

    with pytest.raises(RuntimeError, match="slow failed"):
        await graph.ainvoke({"steps": [], "messages": []}, config("parallel"))
    stored = await saver.aget_tuple(config("parallel"))
    assert stored is not None and stored.pending_writes
    written = [(channel, value) for _, channel, value in stored.pending_writes]
    assert ("steps", ["fast"]) in written  # the branch that succeeded is saved
    assert any(channel == "__error__" for _, channel, _ in stored.pending_writes)

    broken.clear()
    final = await graph.ainvoke(None, config("parallel"))
    assert sorted(final["steps"][:2]) == ["fast", "slow"] and final["steps"][2] == "join"
    assert calls == {"fast": 1, "slow": 2, "join": 1}  # fast was not run again


async def test_node_retry_policy_retries_within_one_invoke(pool: Any) -> None:
    attempts = {"n": 0}

    def flaky(state: State) -> dict[str, Any]:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("transient")
        return {"steps": ["flaky"]}

    builder = StateGraph(State)
    builder.add_node(
        "flaky", flaky, retry_policy=RetryPolicy(initial_interval=0.01, max_attempts=3)
    )
    builder.add_edge(START, "flaky")
    builder.add_edge("flaky", END)
    graph = builder.compile(checkpointer=AsyncpgSaver(pool))
    final = await graph.ainvoke({"steps": [], "messages": []}, config("retry"))
    assert final["steps"] == ["flaky"] and attempts["n"] == 3


async def test_sync_methods_work_from_another_thread_and_refuse_the_loop_thread(
    pool: Any,
) -> None:
    calls: dict[str, int] = {}
    saver = AsyncpgSaver(pool)
    graph = three_nodes(calls, fail_in=set()).compile(checkpointer=saver)
    await graph.ainvoke({"steps": [], "messages": []}, config("sync"))

    got = await asyncio.to_thread(saver.get_tuple, config("sync"))
    assert got is not None and got.checkpoint["channel_values"]["steps"] == ["a", "b", "c"]
    listed = await asyncio.to_thread(lambda: list(saver.list(config("sync"), limit=2)))
    assert len(listed) == 2
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(config("sync"))
    await asyncio.to_thread(saver.delete_thread, "sync")
    assert await saver.aget_tuple(config("sync")) is None


async def test_from_conn_string_and_setup_are_idempotent(empty_database_url: str) -> None:
    async with AsyncpgSaver.from_conn_string(empty_database_url) as saver:
        await saver.setup()
        await saver.setup()
        calls: dict[str, int] = {}
        graph = three_nodes(calls, fail_in=set()).compile(checkpointer=saver)
        final = await graph.ainvoke({"steps": [], "messages": []}, config("setup"))
    assert final["steps"] == ["a", "b", "c"]


async def test_thread_owner_comes_from_config_user_id(pool: Any) -> None:
    from dal.gateways import users
    from dal.records.users import UserDraft

    alice = await users.insert_user(pool, draft=UserDraft(username="owner"))
    calls: dict[str, int] = {}
    graph = three_nodes(calls, fail_in=set()).compile(checkpointer=AsyncpgSaver(pool))
    await graph.ainvoke({"steps": [], "messages": []}, config("owned", user_id=str(alice.id)))
    await graph.ainvoke({"steps": [], "messages": []}, config("named", user_id="not-a-uuid"))
    await graph.ainvoke({"steps": [], "messages": []}, config("anonymous"))
    rows = await pool.fetch("SELECT thread_id, owner, user_id FROM threads ORDER BY thread_id")
    assert [tuple(r) for r in rows] == [
        ("anonymous", NO_OWNER, None),
        ("named", owner_of("not-a-uuid"), None),  # its own scope, no user's
        ("owned", alice.id, alice.id),
    ]
    assert owner_of("not-a-uuid") not in (NO_OWNER, owner_of("not-a-uuid2"))


async def test_two_users_each_run_their_own_thread_main(pool: Any) -> None:
    alice, bob = "0191a9f4-0000-7000-8000-00000000000a", "0191a9f4-0000-7000-8000-00000000000b"
    saver = AsyncpgSaver(pool)
    graph = three_nodes({}, fail_in=set()).compile(checkpointer=saver)
    mine, theirs = config("main", user_id=alice), config("main", user_id=bob)

    await graph.ainvoke({"steps": ["alice"], "messages": []}, mine)
    await graph.ainvoke({"steps": ["bob"], "messages": []}, theirs)
    await graph.ainvoke({"steps": [], "messages": []}, mine)

    assert (await graph.aget_state(mine)).values["steps"][:4] == ["alice", "a", "b", "c"]
    assert len((await graph.aget_state(mine)).values["steps"]) == 7
    assert (await graph.aget_state(theirs)).values["steps"] == ["bob", "a", "b", "c"]
    assert (await graph.aget_state(config("main"))).values == {}  # nobody's "main": none
    # A snapshot's config still reaches its owner's thread.
    [*_, first] = [s async for s in graph.aget_state_history(theirs)]
    assert first.config["configurable"]["user_id"] == bob
    assert (await graph.aget_state(first.config)).values == first.values
    # The calls without a config take the owner as an argument (or the saver's own).
    await saver.acopy_thread("main", "fork", user_id=bob)
    await saver.adelete_thread("main", user_id=bob)
    assert await saver.aget_tuple(theirs) is None
    assert await saver.aget_tuple(config("fork", user_id=bob)) is not None
    assert await AsyncpgSaver(pool, user_id=bob).aget_tuple(config("fork")) is not None
    assert await saver.aget_tuple(config("fork", user_id=alice)) is None
    await saver.aprune(["main"], strategy="delete", user_id=bob)  # bob has none: no-op
    assert (await graph.aget_state(mine)).values["steps"][:1] == ["alice"]


async def test_values_json_cannot_hold_round_trip_through_blobs(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    odd = {"nul": "a\x00b", "big": 2**63, "nan_list": [float("inf")], "bytes": b"\x00\xff"}

    class Odd(TypedDict):
        nul: str
        big: int
        nan_list: list[float]
        bytes: bytes

    builder = StateGraph(Odd)
    builder.add_node("noop", lambda s: {})
    builder.add_edge(START, "noop")
    builder.add_edge("noop", END)
    graph = builder.compile(checkpointer=saver)
    await graph.ainvoke(odd, config("odd"))
    assert (await graph.aget_state(config("odd"))).values == odd
