"""The graph every contender runs: START -> plan -> act -> review -> END, no LLM.

Each node appends to a list channel (``operator.add``) and sets a few other keys, so a
3-node invocation writes 5 checkpoints and the writes of each step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypeAlias, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

Saver: TypeAlias = BaseCheckpointSaver[Any]
Graph: TypeAlias = "CompiledStateGraph[Any, Any, Any, Any]"

USER_TEXT = "Please summarise the deployment plan we discussed and list the open questions."


class State(TypedDict, total=False):
    messages: Annotated[list[str], operator.add]
    step: str
    turns: int
    summary: str


class Node:
    """A node: appends a message, sets the other keys."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, state: State) -> State:
        turns = state.get("turns", 0) + 1
        return {
            "messages": [f"{self.name}: step {turns} of the plan, with a sentence or two of text."],
            "step": self.name,
            "turns": turns,
            "summary": f"{len(state.get('messages', []))} messages so far; {self.name} ran last",
        }


def build_graph(saver: Saver) -> Graph:
    """START -> plan -> act -> review -> END, compiled with ``saver``."""
    builder = StateGraph(State)
    names = ("plan", "act", "review")
    for name in names:
        builder.add_node(name, Node(name))
    for before, after in zip((START, *names), (*names, END), strict=True):
        builder.add_edge(before, after)
    return builder.compile(checkpointer=saver)


def thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def checkpoint_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


async def invoke(graph: Graph, thread_id: str) -> None:
    await graph.ainvoke({"messages": [USER_TEXT]}, thread(thread_id))
