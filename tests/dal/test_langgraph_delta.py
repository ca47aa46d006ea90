"""LangGraph's DeltaChannel on AsyncpgSaver: a channel stored as the writes that built it, rebuilt
by replaying them from the nearest snapshot. The saver answers the whole ancestor walk
(``aget_delta_channel_history``) in one query; these tests hold it to the base class's own
walk, one ``aget_tuple`` per ancestor, on linear and forked threads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from dal.database import connect
from dal.langgraph import AsyncpgSaver
from dal.settings import Settings


def concat(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    return [*state, *(item for write in writes for item in write)]


class Notes(TypedDict):
    # A snapshot every 3 updates: most checkpoints store no value of the channel.
    notes: Annotated[list[str], DeltaChannel(concat, snapshot_frequency=3)]
    turn: int


def builder() -> StateGraph[Notes]:
    """START -> (left, right in parallel) -> join -> END; every node adds a note."""

    def node(name: str) -> Any:
        def run(state: Notes) -> dict[str, Any]:
            return {"notes": [f"{name}@{state.get('turn', 0)}"]}

        return run

    graph = StateGraph(Notes)
    for name in ("left", "right", "join"):
        graph.add_node(name, node(name))
    graph.add_edge(START, "left")
    graph.add_edge(START, "right")
    graph.add_edge(["left", "right"], "join")
    graph.add_edge("join", END)
    return graph


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def run_turns(graph: Any, thread_id: str, turns: range) -> None:
    for turn in turns:
        await graph.ainvoke({"notes": [f"user@{turn}"], "turn": turn}, config(thread_id))


async def assert_history_matches_base_walk(saver: AsyncpgSaver, thread_id: str) -> int:
    """Every checkpoint of the thread: the one-query history equals the base class's walk."""
    compared = 0
    async for item in saver.alist(config(thread_id)):
        for channels in (["notes"], ["notes", "turn", "absent"]):
            mine = await saver.aget_delta_channel_history(config=item.config, channels=channels)
            walk = await BaseCheckpointSaver.aget_delta_channel_history(
                saver, config=item.config, channels=channels
            )
            assert mine == walk, item.config
        compared += 1
    return compared


async def test_delta_channel_state_survives_a_new_saver_and_matches_memory(
    pool: Any, settings: Settings
) -> None:
    await run_turns(builder().compile(checkpointer=AsyncpgSaver(pool)), "delta", range(7))
    reference = builder().compile(checkpointer=InMemorySaver())
    await run_turns(reference, "delta", range(7))
    expected = (await reference.aget_state(config("delta"))).values
    assert len(expected["notes"]) == 7 * 4

    async with connect(settings) as other_pool:  # a new process, as after a deploy
        resumed = builder().compile(checkpointer=AsyncpgSaver(other_pool))
        state = await resumed.aget_state(config("delta"))
        assert state.values == expected
        await run_turns(resumed, "delta", range(7, 9))
        await run_turns(reference, "delta", range(7, 9))
        after = (await resumed.aget_state(config("delta"))).values
        assert after == (await reference.aget_state(config("delta"))).values
        assert after["notes"][-1] == "join@8"


async def test_delta_channel_history_equals_the_base_walk_on_every_checkpoint(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    graph = builder().compile(checkpointer=saver)
    await run_turns(graph, "walk", range(5))
    compared = await assert_history_matches_base_walk(saver, "walk")
    assert compared >= 5 * 4
    # Some checkpoints have a seed (a snapshot) and writes before them; the newest has writes.
    newest = await saver.aget_delta_channel_history(config=config("walk"), channels=["notes"])
    assert newest["notes"]["writes"]
    assert "seed" in newest["notes"]


async def test_delta_channel_history_of_a_fork_follows_only_its_own_parents(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    graph = builder().compile(checkpointer=saver)
    await run_turns(graph, "fork", range(4))
    history = [s async for s in graph.aget_state_history(config("fork"))]
    old = next(s for s in history if s.values.get("turn") == 1 and not s.next)
    # Fork from turn 1 and go on: the fork's checkpoints sort after the first branch's.
    forked = await graph.aupdate_state(old.config, {"notes": ["edited"]})
    await graph.ainvoke({"notes": ["user@fork"], "turn": 9}, forked)
    state = await graph.aget_state(config("fork"))
    assert "edited" in state.values["notes"]
    assert not any(note.endswith("@2") or note.endswith("@3") for note in state.values["notes"])
    await assert_history_matches_base_walk(saver, "fork")


async def test_delta_channel_history_edge_cases(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    assert await saver.aget_delta_channel_history(config=config("none"), channels=[]) == {}
    unknown = await saver.aget_delta_channel_history(config=config("none"), channels=["notes"])
    assert unknown == {"notes": {"writes": []}}
    await run_turns(builder().compile(checkpointer=saver), "edge", range(1))
    first = [t async for t in saver.alist(config("edge"))][-1]  # the root: no parent
    root = await saver.aget_delta_channel_history(config=first.config, channels=["notes"])
    assert root == {"notes": {"writes": []}}


async def test_delta_channel_history_sync_from_another_thread(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    await run_turns(builder().compile(checkpointer=saver), "sync", range(3))
    expected = await saver.aget_delta_channel_history(config=config("sync"), channels=["notes"])
    got = await asyncio.to_thread(
        saver.get_delta_channel_history, config=config("sync"), channels=["notes"]
    )
    assert got == expected
