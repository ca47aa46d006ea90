"""What the contenders are measured on, and the threads the reads read.

Every workload runs with LangGraph's default durability, "async": a checkpoint is saved while
the next step runs, and an invocation returns once everything is saved.

- invoke: ``--invokes`` invocations a round spread over ``--threads`` fresh threads (500 over
  50: 10 each, as the issue asked), by one client, then by ``--graph-clients`` at once;
- graph.aget_state on threads written that way (one aget_tuple each, plus LangGraph's work);
- graph.aget_state_history(limit=100) and saver.alist(limit=100) on 4 threads with more than
  100 checkpoints (a 3-node invocation writes 5, so 21 invocations: 105), written beforehand;
- saver.aget_tuple of the latest checkpoint of the threads above, shown in µs per call.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from bench.checkpoints.contenders import Contender, Side
from bench.checkpoints.graph import Saver, checkpoint_config, invoke, thread

# --- the threads the reads read ---------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """The threads the read workloads read, the same in every contender's store."""

    read_threads: list[str]  # each as the invocation workload leaves a thread
    long_threads: list[str]  # each with more than ``history`` checkpoints
    checkpoints_per_invoke: int
    long_checkpoints: int  # checkpoints of each long thread


async def count_checkpoints(saver: Saver, thread_id: str) -> int:
    return len([t async for t in saver.alist(checkpoint_config(thread_id))])


async def make_fixture(sides: Mapping[Contender, Side], args: argparse.Namespace) -> Fixture:
    """Write the threads the reads read, the same way in each contender's store (not timed;
    it warms the invocation path up too): ``threads`` threads of ``invokes / threads``
    invocations (the invocation workload's), and 4 threads long enough for a history."""
    probe = sides["memory"]
    await invoke(probe.graph, "probe")
    per_invoke = await count_checkpoints(probe.saver, "probe")
    long_invokes = args.history // per_invoke + 1  # more checkpoints than a history shows
    per_thread = max(1, args.invokes // args.threads)
    reads = [f"read-t{i}" for i in range(args.threads)]
    longs = [f"long-t{i}" for i in range(4)]
    for side in sides.values():
        for _ in range(per_thread):
            for thread_id in reads:
                await invoke(side.graph, thread_id)
        for _ in range(long_invokes):
            for thread_id in longs:
                await invoke(side.graph, thread_id)
    fixture = Fixture(reads, longs, per_invoke, long_invokes * per_invoke)
    await check_same_results(sides, fixture, args.history)
    return fixture


async def check_same_results(
    sides: Mapping[Contender, Side], fixture: Fixture, history: int
) -> None:
    """Every contender did the same work: fail loudly if their answers differ."""
    answers: dict[Contender, tuple[Any, ...]] = {}
    for name, side in sides.items():
        state = await side.graph.aget_state(thread(fixture.read_threads[0]))
        long_thread = thread(fixture.long_threads[0])
        states = [s async for s in side.graph.aget_state_history(long_thread, limit=history)]
        steps = [s.metadata["step"] if s.metadata else None for s in states]
        tuples = [
            t.checkpoint["id"]
            async for t in side.saver.alist(checkpoint_config(fixture.long_threads[0]))
        ]
        answers[name] = (state.values, len(states), steps, len(tuples))
        if len(states) != history or len(tuples) != fixture.long_checkpoints:
            raise RuntimeError(
                f"{name}: {len(states)} states in a history of {history}, {len(tuples)} "
                f"checkpoints in a thread of {fixture.long_checkpoints}"
            )
    if answers["mnemo"] != answers["official"] or answers["mnemo"] != answers["memory"]:
        raise RuntimeError(
            "the savers gave different answers: the benchmark compares different work"
        )


# --- the workloads ----------------------------------------------------------------------

Operation: TypeAlias = Callable[[Side, int, int, int], Awaitable[None]]


@dataclass(frozen=True)
class GraphWorkload:
    key: str
    title: str
    target: float | None  # minimum Mnemo / official ratio; None: reported only
    ops: int  # operations per contender per round
    slice: int  # operations per turn
    unit: Literal["per_s", "us"]  # how the table shows it: ops/s, or µs per operation
    run: Operation  # (side, round, index of the first operation, operations)


def _invoke_workload(threads: int, clients: int, prefix: str) -> Operation:
    """Invocations ``first``..``first + ops`` of the round, operation ``j`` on thread
    ``j % threads`` (fresh threads each round); ``clients`` tasks pull them from one queue. A
    turn never holds two invocations of one thread (it is at most ``threads`` long)."""

    async def run(side: Side, round_: int, first: int, ops: int) -> None:
        jobs = iter([f"{prefix}-r{round_}-t{j % threads}" for j in range(first, first + ops)])

        async def client() -> None:
            for thread_id in jobs:
                await invoke(side.graph, thread_id)

        if clients == 1:
            await client()
        else:
            await asyncio.gather(*(client() for _ in range(clients)))

    return run


def _cycle(threads: list[str], first: int, ops: int) -> list[str]:
    return [threads[j % len(threads)] for j in range(first, first + ops)]


def workloads(args: argparse.Namespace, fixture: Fixture) -> list[GraphWorkload]:
    threads, clients, history = args.threads, args.graph_clients, args.history

    async def get_state(side: Side, round_: int, first: int, ops: int) -> None:
        for thread_id in _cycle(fixture.read_threads, first, ops):
            await side.graph.aget_state(thread(thread_id))

    async def state_history(side: Side, round_: int, first: int, ops: int) -> None:
        for thread_id in _cycle(fixture.long_threads, first, ops):
            [s async for s in side.graph.aget_state_history(thread(thread_id), limit=history)]

    async def get_tuple(side: Side, round_: int, first: int, ops: int) -> None:
        for thread_id in _cycle(fixture.read_threads, first, ops):
            await side.saver.aget_tuple(checkpoint_config(thread_id))

    async def list_tuples(side: Side, round_: int, first: int, ops: int) -> None:
        for thread_id in _cycle(fixture.long_threads, first, ops):
            [t async for t in side.saver.alist(checkpoint_config(thread_id), limit=history)]

    per_thread = max(1, args.invokes // threads)
    spread = f"{per_thread} per thread"
    of = f"{history} of {fixture.long_checkpoints}"
    return [
        GraphWorkload(
            "invoke",
            f"invoke, 1 client ({spread})",
            2.0,
            args.invokes,
            threads,
            "per_s",
            _invoke_workload(threads, 1, "seq"),
        ),
        GraphWorkload(
            "invoke_concurrent",
            f"invoke, {clients} clients ({spread})",
            2.0,
            args.invokes,
            threads,
            "per_s",
            _invoke_workload(threads, clients, "con"),
        ),
        GraphWorkload(
            "get_state", "graph.aget_state", None, args.get_states, 100, "per_s", get_state
        ),
        GraphWorkload(
            "state_history",
            f"graph.aget_state_history ({of})",
            None,
            args.histories,
            max(1, args.histories // 5),
            "per_s",
            state_history,
        ),
        GraphWorkload(
            "aget_tuple", "saver.aget_tuple (latest)", 2.0, args.tuples, 200, "us", get_tuple
        ),
        GraphWorkload(
            "alist",
            f"saver.alist ({of})",
            2.0,
            args.lists,
            max(1, args.lists // 5),
            "us",
            list_tuples,
        ),
    ]
