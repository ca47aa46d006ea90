"""The checkpoints suite: LangGraph checkpointers side by side on the same graph workload.

- ``official``: langgraph-checkpoint-postgres's ``AsyncPostgresSaver`` on a psycopg pool opened
  as its documentation says (autocommit, ``prepare_threshold=0``, ``dict_row``), in a database
  of its own that ``saver.setup()`` created the tables in;
- ``mnemo``: Mnemo's ``AsyncpgSaver`` on an asyncpg pool built by ``dal.database.pool_options``,
  in a database migrated by ``dal.migrate.apply``;
- ``memory``: LangGraph's ``InMemorySaver``, a reference: what the graph itself costs.

Both pools have ``--pool-size`` connections. The graph has three nodes in a row, no LLM: each
appends to a list channel (``operator.add``) and sets a few other keys. Every workload is
measured in rounds; within a round the contenders take turns (who goes first rotates), so the
drift of a noisy machine hits all alike. Ratios are Mnemo / official throughput.

Workloads (LangGraph's default durability, "async": a checkpoint is saved while the next step
runs, and an invocation returns once everything is saved):
- invoke: ``--invokes`` invocations a round spread over ``--threads`` fresh threads (500 over
  50: 10 each, as the issue asked), by one client, then by ``--graph-clients`` at once;
- graph.aget_state on threads written that way (one aget_tuple each, plus LangGraph's work);
- graph.aget_state_history(limit=100) and saver.alist(limit=100) on 4 threads with more than
  100 checkpoints (a 3-node invocation writes 5, so 21 invocations: 105), written beforehand;
- saver.aget_tuple of the latest checkpoint of the threads above, shown in µs per call.
Afterwards, 50 invocations on one-connection pools count, per invocation, the saver calls, the
statements each driver sends, the transactions PostgreSQL's statistics saw and the WAL the
server wrote meanwhile (noise-free, unlike times: what each save costs the server's disk; on a
server of its own, as the embedded one is).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import operator
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeAlias, TypedDict, cast

import asyncpg
import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from bench._report import hot_spots, log, table
from dal.database import init_connection, pool_options
from dal.langgraph import AsyncpgSaver
from dal.settings import Settings

Contender = Literal["official", "mnemo", "memory"]
CONTENDERS: tuple[Contender, ...] = ("official", "mnemo", "memory")
DATABASES: tuple[Contender, ...] = ("official", "mnemo")  # the contenders with a database
LABELS: dict[Contender, str] = {
    "official": "AsyncPostgresSaver",
    "mnemo": "Mnemo AsyncpgSaver",
    "memory": "InMemorySaver",
}
Saver: TypeAlias = BaseCheckpointSaver[Any]
Graph: TypeAlias = "CompiledStateGraph[Any, Any, Any, Any]"

# name: (full run, --quick, help); each can be overridden on the command line.
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

USER_TEXT = "Please summarise the deployment plan we discussed and list the open questions."


# --- the graph --------------------------------------------------------------------------


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


# --- the contenders ---------------------------------------------------------------------


@dataclass
class Side:
    """One contender: its saver and the graph compiled with it."""

    name: Contender
    saver: Saver
    graph: Graph


class CountingCursor(AsyncCursor[Any]):
    """A psycopg cursor counting the statements it sends (``executemany``: one per row)."""

    statements = 0

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return await super().execute(query, params, **kwargs)

    async def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        params = list(params_seq)
        CountingCursor.statements += len(params)
        await super().executemany(query, params, **kwargs)


@asynccontextmanager
async def open_sides(
    urls: Mapping[Contender, str], pool_size: int, *, count_statements: Counter[str] | None = None
) -> AsyncIterator[dict[Contender, Side]]:
    """The three contenders, on pools of ``pool_size`` connections (closed on exit). With
    ``count_statements``, each statement either pool sends is counted in it."""
    settings = Settings(
        database_url=urls["mnemo"], db_min_connections=pool_size, db_max_connections=pool_size
    )
    options = pool_options(settings)
    official_kwargs: dict[str, Any] = {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
    }
    if count_statements is not None:
        counter = count_statements

        async def init(conn: asyncpg.Connection[Any]) -> None:
            await init_connection(conn)
            conn.add_query_logger(lambda _: counter.update(["mnemo"]))

        options["init"] = init
        official_kwargs["cursor_factory"] = CountingCursor
    async with AsyncExitStack() as stack:
        mnemo_pool: asyncpg.Pool[Any] = await asyncpg.create_pool(urls["mnemo"], **options)
        stack.push_async_callback(mnemo_pool.close)
        psycopg_pool = AsyncConnectionPool(
            urls["official"],
            min_size=pool_size,
            max_size=pool_size,
            kwargs=official_kwargs,
            open=False,
        )
        await psycopg_pool.open(wait=True)
        stack.push_async_callback(psycopg_pool.close)
        savers: dict[Contender, Saver] = {
            "official": AsyncPostgresSaver(
                cast("AsyncConnectionPool[AsyncConnection[DictRow]]", psycopg_pool)
            ),
            "mnemo": AsyncpgSaver(mnemo_pool),
            "memory": InMemorySaver(),
        }
        yield {c: Side(c, savers[c], build_graph(savers[c])) for c in CONTENDERS}


def unix_socket_ok(url: str) -> None:
    """psycopg reads the embedded server's URL (``postgresql://user:@/db?host=/socket/dir``)
    as libpq does: fail early and clearly if it does not."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1")


# --- fixtures ---------------------------------------------------------------------------


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


# --- workloads --------------------------------------------------------------------------

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


# --- measuring --------------------------------------------------------------------------


@dataclass
class GraphResult:
    workload: GraphWorkload
    samples: dict[Contender, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )
    cpu: dict[Contender, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )  # the process's CPU seconds per operation, each round

    def median(self, contender: Contender) -> float:
        return statistics.median(self.samples[contender])

    @property
    def ratio(self) -> float:
        return self.median("mnemo") / self.median("official")

    @property
    def round_ratios(self) -> list[float]:
        pairs = zip(self.samples["official"], self.samples["mnemo"], strict=True)
        return [mnemo / official for official, mnemo in pairs]

    @property
    def passed(self) -> bool | None:
        return None if self.workload.target is None else self.ratio >= self.workload.target

    def cell(self, contender: Contender) -> str:
        ops_s = self.median(contender)
        if self.workload.unit == "us":
            return f"{1e6 / ops_s:,.0f} µs"
        return f"{ops_s:,.0f}/s"

    def as_json(self) -> dict[str, Any]:
        w = self.workload
        return {
            "workload": w.key,
            "title": w.title,
            "ops_per_round": w.ops,
            **{f"{c}_ops_s": round(self.median(c), 1) for c in CONTENDERS},
            **{f"{c}_us_per_op": round(1e6 / self.median(c), 1) for c in CONTENDERS},
            **{
                f"{c}_cpu_us_per_op": round(1e6 * statistics.median(self.cpu[c]), 1)
                for c in CONTENDERS
            },
            "ratio": round(self.ratio, 4),
            "target": w.target,
            "result": {None: None, True: "PASS", False: "BELOW"}[self.passed],
            "rounds": {
                **{f"{c}_ops_s": [round(x, 1) for x in self.samples[c]] for c in CONTENDERS},
                "ratio": [round(x, 4) for x in self.round_ratios],
            },
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


# --- what an invocation costs -----------------------------------------------------------


@dataclass
class Work:
    """Per invocation, on average: saver calls, statements sent, transactions committed, WAL
    bytes written."""

    calls: dict[str, float]
    statements: float | None
    transactions: float | None
    wal_bytes: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "saver_calls": {k: round(v, 2) for k, v in self.calls.items()},
            "statements": None if self.statements is None else round(self.statements, 2),
            "transactions": None if self.transactions is None else round(self.transactions, 2),
            "wal_bytes": None if self.wal_bytes is None else round(self.wal_bytes),
        }


SAVER_METHODS = ("aget_tuple", "alist", "aput", "aput_writes")


def count_calls(saver: Saver, counter: Counter[str]) -> None:
    """Count the calls of the saver's async methods in ``counter`` (instance attributes
    shadowing the class's methods)."""
    for name in SAVER_METHODS:
        method = getattr(saver, name)
        if name == "alist":

            def wrapper_list(*a: Any, _m: Any = method, _n: str = name, **k: Any) -> Any:
                counter.update([_n])
                return _m(*a, **k)

            setattr(saver, name, wrapper_list)
        else:

            async def wrapper(*a: Any, _m: Any = method, _n: str = name, **k: Any) -> Any:
                counter.update([_n])
                return await _m(*a, **k)

            setattr(saver, name, wrapper)


def transactions(server_url: str, databases: Mapping[Contender, str]) -> dict[Contender, int]:
    """Transactions committed or rolled back in each database so far (cumulative statistics;
    a backend reports its own when it ends, so close the pools first)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = ANY(%s)",
            (list(databases.values()),),
        ).fetchall()
    by_name = {name: int(count) for name, count in rows}
    return {c: by_name.get(name, 0) for c, name in databases.items()}


def wal_position(server_url: str) -> int:
    """Where the server's write-ahead log is, in bytes: the difference of two readings is the
    WAL written between them (by every database of the server)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def settled_transactions(
    server_url: str, databases: Mapping[Contender, str]
) -> dict[Contender, int]:
    """``transactions``, once the ended backends have reported (the same twice running)."""
    last = await asyncio.to_thread(transactions, server_url, databases)
    for _ in range(25):
        await asyncio.sleep(0.2)
        now = await asyncio.to_thread(transactions, server_url, databases)
        if now == last:
            break
        last = now
    return last


async def count_work(
    urls: Mapping[Contender, str],
    server_url: str,
    databases: Mapping[Contender, str],
    *,
    invokes: int,
    threads: int,
) -> dict[Contender, Work]:
    """Run ``invokes`` invocations (on ``threads`` new threads) on a one-connection pool of its
    own per contender, after two to warm the connection up (statements prepared, types
    introspected), counting saver calls and statements client side, transactions in
    PostgreSQL's statistics, less those of the same pass without the ``invokes``, and the WAL
    written while a contender's invocations ran (the contenders run one after the other)."""

    async def one_pass(
        n: int,
    ) -> tuple[dict[Contender, Counter[str]], Counter[str], Counter[str]]:
        statements: Counter[str] = Counter()
        wal: Counter[str] = Counter()
        calls: dict[Contender, Counter[str]] = {c: Counter() for c in CONTENDERS}
        async with open_sides(urls, 1, count_statements=statements) as sides:
            for contender, side in sides.items():
                for _ in range(2):
                    await invoke(side.graph, f"count-{n}-warm")
                statements[contender] = CountingCursor.statements = 0
                count_calls(side.saver, calls[contender])
                start = await asyncio.to_thread(wal_position, server_url)
                for j in range(n):
                    await invoke(side.graph, f"count-{n}-t{j % threads}")
                wal[contender] = await asyncio.to_thread(wal_position, server_url) - start
                if contender == "official":
                    statements[contender] = CountingCursor.statements
        return calls, statements, wal

    before = await settled_transactions(server_url, databases)
    await one_pass(0)
    baseline = await settled_transactions(server_url, databases)
    calls, statements, wal = await one_pass(invokes)
    after = await settled_transactions(server_url, databases)
    work: dict[Contender, Work] = {}
    for contender in CONTENDERS:
        per_call = {m: calls[contender][m] / invokes for m in SAVER_METHODS}
        if contender == "memory":
            work[contender] = Work(per_call, None, None)
            continue
        overhead = baseline[contender] - before[contender]
        committed = after[contender] - baseline[contender] - overhead
        work[contender] = Work(
            per_call,
            statements[contender] / invokes,
            committed / invokes,
            wal[contender] / invokes,
        )
    return work


# --- the suite --------------------------------------------------------------------------


@dataclass
class Outcome:
    results: list[GraphResult]
    work: dict[Contender, Work]
    fixture: Fixture


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


def render(outcome: Outcome) -> str:
    header = (
        "workload",
        "AsyncPostgresSaver",
        "Mnemo",
        "ratio",
        "rounds",
        "target",
        "result",
        "InMemorySaver",
    )
    rows = [
        (
            r.workload.title,
            r.cell("official"),
            r.cell("mnemo"),
            f"{r.ratio:.2f}",
            f"{min(r.round_ratios):.2f}-{max(r.round_ratios):.2f}",
            "-" if r.workload.target is None else f">= {r.workload.target:.1f}",
            {None: "-", True: "PASS", False: "BELOW"}[r.passed],
            r.cell("memory"),
        )
        for r in outcome.results
    ]
    invoke = next(r for r in outcome.results if r.workload.key == "invoke")
    work_header = (
        "per invocation (1 client)",
        "wall ms",
        "client CPU ms",
        "saver calls",
        "statements",
        "transactions",
        "WAL kB",
    )
    work_rows = []
    for contender in CONTENDERS:
        work = outcome.work[contender]
        calls = " + ".join(
            f"{work.calls[m]:g} {m}" for m in ("aget_tuple", "aput", "aput_writes") if work.calls[m]
        )
        work_rows.append(
            (
                LABELS[contender],
                f"{1e3 / invoke.median(contender):.2f}",
                f"{1e3 * statistics.median(invoke.cpu[contender]):.2f}",
                calls,
                "-" if work.statements is None else f"{work.statements:.1f}",
                "-" if work.transactions is None else f"{work.transactions:.1f}",
                "-" if work.wal_bytes is None else f"{work.wal_bytes / 1000:.1f}",
            )
        )
    return "\n\n".join([table(header, rows), table(work_header, work_rows)])


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "median_of": "per contender over the rounds; ratio = Mnemo / official (throughput)",
        "contenders": LABELS,
        "checkpoints_per_invoke": outcome.fixture.checkpoints_per_invoke,
        "long_thread_checkpoints": outcome.fixture.long_checkpoints,
        "results": [result.as_json() for result in outcome.results],
        "per_invoke": {c: outcome.work[c].as_json() for c in CONTENDERS},
    }
