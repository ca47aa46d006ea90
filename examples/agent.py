"""A LangGraph agent (no LLM) that checkpoints into Mnemo, stops for a human, and resumes.
Run it with the project's virtualenv after `make install-dev` (for LangGraph itself),
`.venv/bin/python examples/agent.py`, on DATABASE_URL or the embedded PostgreSQL of `make run`."""

from __future__ import annotations

import asyncio
import operator
import uuid
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from dal.database import database_url
from dal.langgraph import AsyncpgSaver
from dal.settings import Settings


class Refund(TypedDict):
    log: Annotated[list[str], operator.add]
    amount: int


def check(state: Refund) -> dict[str, list[str]]:
    return {"log": [f"checked a refund of {state['amount']} EUR"]}


def approve(state: Refund) -> dict[str, list[str]]:
    decision = interrupt(f"approve a refund of {state['amount']} EUR?")  # waits for a human
    return {"log": [f"human said {decision}"]}


builder = StateGraph(Refund)
builder.add_node("check", check)
builder.add_node("approve", approve)
builder.add_edge(START, "check")
builder.add_edge("check", "approve")
builder.add_edge("approve", END)


async def main() -> None:
    url = database_url(Settings())
    config = {"configurable": {"thread_id": f"refund-{uuid.uuid4()}"}}
    async with AsyncpgSaver.from_conn_string(url) as saver:
        await saver.setup()  # applies Mnemo's migrations if needed
        graph = builder.compile(checkpointer=saver)
        paused = await graph.ainvoke({"log": [], "amount": 40}, config)
        print("paused:", paused["__interrupt__"][0].value)

    # Later, in another process: a new saver resumes the thread where it stopped.
    async with AsyncpgSaver.from_conn_string(url) as saver:
        graph = builder.compile(checkpointer=saver)
        done = await graph.ainvoke(Command(resume="yes"), config)
        print("done:", done["log"])
        history = [s async for s in graph.aget_state_history(config)]
        print("checkpoints:", len(history))


if __name__ == "__main__":
    asyncio.run(main())
