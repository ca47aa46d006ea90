"""The checkpoints suite: LangGraph checkpointers side by side on the same graph workload.

- ``graph``: the graph every contender runs (three nodes in a row, no LLM);
- ``contenders``: LangGraph's ``AsyncPostgresSaver`` ("official"), Mnemo's ``AsyncpgSaver``
  ("mnemo") and ``InMemorySaver`` as a reference ("memory"), each with the graph compiled on it;
- ``workloads``: what they are measured on, and the threads the reads read;
- ``cost``: what an invocation costs the server, counted (statements, transactions, WAL);
- ``report``: the results, as text tables and JSON.

Both pools have ``--pool-size`` connections. Every workload is measured in rounds; within a
round the contenders take turns (who goes first rotates), so the drift of a noisy machine hits
all alike. Ratios are Mnemo / official throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import time
from collections.abc import Mapping
from typing import cast

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from bench._report import hot_spots, log
from bench.checkpoints.contenders import (
    CONTENDERS,
    DATABASES,
    Contender,
    Side,
    open_sides,
    unix_socket_ok,
)
from bench.checkpoints.cost import count_work
from bench.checkpoints.report import GraphResult, Outcome, as_json, render
from bench.checkpoints.workloads import GraphWorkload, make_fixture, workloads

__all__ = ["DEFAULTS", "Contender", "as_json", "render", "run"]

DEFAULTS: dict[str, tuple[int, int, str]] = {
    "threads": (50, 50, "threads the invocations of a round are spread over"),
    "invokes": (500, 100, "graph invocations per contender per round (each workload)"),
    "graph_clients": (10, 10, "concurrent clients of the concurrent invocation workload"),
    "get_states": (1000, 200, "graph.aget_state calls per contender per round"),
    "history": (100, 100, "checkpoints per history / list (the threads read have more)"),
    "histories": (50, 10, "graph.aget_state_history(limit=history) calls per round"),
    "tuples": (2000, 400, "saver.aget_tuple calls per contender per round"),
    "lists": (100, 20, "saver.alist(limit=history) calls per contender per round"),
}


async def measure(
    workload: GraphWorkload, sides: Mapping[Contender, Side], round_: int
) -> dict[Contender, tuple[float, float]]:
    """One round: each contender runs ``workload.ops`` operations in turns of
    ``workload.slice``, the order rotating every turn. Returns (ops/s, CPU s/op) of each."""
    done = dict.fromkeys(CONTENDERS, 0)
    elapsed = dict.fromkeys(CONTENDERS, 0.0)
    cpu = dict.fromkeys(CONTENDERS, 0.0)
    gc.collect()
    turn = 0
    while min(done.values()) < workload.ops:
        k = (round_ + turn) % len(CONTENDERS)
        for contender in CONTENDERS[k:] + CONTENDERS[:k]:
            ops = min(workload.slice, workload.ops - done[contender])
            if ops <= 0:
                continue
            cpu_start, start = time.process_time(), time.perf_counter()
            await workload.run(sides[contender], round_, done[contender], ops)
            elapsed[contender] += time.perf_counter() - start
            cpu[contender] += time.process_time() - cpu_start
            done[contender] += ops
        turn += 1
    return {c: (done[c] / elapsed[c], cpu[c] / done[c]) for c in CONTENDERS}


async def run_profile(sides: Mapping[Contender, Side], chosen: list[GraphWorkload]) -> None:
    for workload in chosen:
        if workload.key not in ("invoke", "aget_tuple", "alist"):
            continue
        for contender in DATABASES:
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            await workload.run(sides[contender], 999, 0, workload.slice)
            profiler.disable()
            ops_s = workload.slice / (time.perf_counter() - start)
            title = f"{workload.title}, {contender} ({ops_s:,.0f} ops/s under cProfile)"
            print(hot_spots(profiler, title))


async def run(
    urls: Mapping[Contender, str],
    server_url: str,
    databases: Mapping[Contender, str],
    args: argparse.Namespace,
) -> Outcome:
    """Measure every checkpoint workload: ``urls`` are the contenders' databases (Mnemo's
    migrated, the official saver's empty), ``server_url`` the maintenance database."""
    await asyncio.to_thread(unix_socket_ok, urls["official"])
    async with open_sides(urls, args.pool_size) as sides:
        await cast(AsyncPostgresSaver, sides["official"].saver).setup()
        log(f"checkpoints: pools of {args.pool_size}; writing the threads the reads read")
        fixture = await make_fixture(sides, args)
        chosen = workloads(args, fixture)
        results: list[GraphResult] = []
        for workload in chosen:
            result = GraphResult(workload)
            for contender in CONTENDERS:  # warm-up: one turn each, on threads of its own
                await workload.run(sides[contender], -1, 0, workload.slice)
            for round_ in range(args.rounds):
                measured = await measure(workload, sides, round_)
                for contender, (ops_s, cpu) in measured.items():
                    result.samples[contender].append(ops_s)
                    result.cpu[contender].append(cpu)
                official, mnemo = measured["official"][0], measured["mnemo"][0]
                log(
                    f"{workload.title:<40} round {round_ + 1}/{args.rounds}: official "
                    f"{official:>7,.0f}  mnemo {mnemo:>7,.0f}  memory "
                    f"{measured['memory'][0]:>7,.0f} ops/s  ({mnemo / official:.2f})"
                )
            results.append(result)
        if args.profile:
            await run_profile(sides, chosen)
    work = await count_work(
        urls,
        server_url,
        databases,
        invokes=50,
        threads=max(1, min(args.threads, 10)),
    )
    return Outcome(results, work, fixture)
