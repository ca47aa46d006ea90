"""Appends and replays of event logs: Mnemo's gateways against raw asyncpg running the same
statement text (``Q[...].sql``) with the arguments the gateway passes.

Both contenders get a pool of their own, built by ``asyncpg.create_pool(url,
**dal.database.pool_options(settings))`` from the same settings (same codecs, init and
statement cache), as in the messages suite. Each appends to logs of its own (a task, a
conversation per client), so neither waits on the other's row lock; both read the same
replayed log. The gateway validates the caller's ``EventDraft``, checks the sizes, maps the
rows to ``Event`` records; raw asyncpg gets ``asyncpg.Record`` objects back and stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from uuid import UUID

from bench._report import log
from dal.gateways import conversations, events, tasks, users
from dal.queries import Q
from dal.records.conversations import ConversationDraft
from dal.records.events import EventDraft
from dal.records.tasks import TaskDraft
from dal.records.users import UserDraft

Contender = Literal["raw", "mnemo"]
CONTENDERS: tuple[Contender, ...] = ("raw", "mnemo")
APPEND_TARGET = 0.9

APPEND_TASK_SQL = Q["append_task_events"].sql
APPEND_CONVERSATION_SQL = Q["append_conversation_events"].sql
PAGE_TASK_SQL = Q["list_task_events"].sql
EVENT_TYPE = "step.finished"


def payload(n: int) -> dict[str, Any]:
    """A step's event as an agent would log it: about 200 bytes of JSON."""
    return {
        "step": n,
        "name": "search",
        "summary": "Looked up the latest EV registrations by country and quarter.",
        "tool": {"name": "web_search", "calls": 3},
        "tokens": 812,
    }


@dataclass(frozen=True)
class Fixture:
    user_id: UUID
    secret: str  # the user's token, for the HTTP side
    replay_task_id: UUID  # holds the replayed log; only read


@dataclass
class Logs:
    """The logs a contender appends to: a task and a conversation per client."""

    task_ids: list[UUID]
    conversation_ids: list[UUID]


Pool: TypeAlias = Any


async def new_task(pool: Pool, user_id: UUID, title: str) -> UUID:
    task = await tasks.insert_task(
        pool, user_id=user_id, draft=TaskDraft(kind="bench.events", title=title)
    )
    return task.id


async def make_fixture(pool: Pool, log_events: int) -> Fixture:
    created = await users.create_user(pool, draft=UserDraft(username="bench-events"))
    user_id = created.user.id
    replay_task_id = await new_task(pool, user_id, "replayed")
    # The log starts with the status event of the task's creation; appends fill it up.
    page = await events.list_task_events(pool, task_id=replay_task_id, user_id=None, limit=1)
    for start in range(page.last_seq, log_events, 100):
        drafts = [
            EventDraft(type=EVENT_TYPE, payload=payload(n))
            for n in range(start, min(start + 100, log_events))
        ]
        await events.append_task_events(pool, task_id=replay_task_id, events=drafts)
    return Fixture(user_id, created.token.secret, replay_task_id)


async def make_logs(pool: Pool, user_id: UUID, clients: int) -> Logs:
    task_ids = [await new_task(pool, user_id, f"appended {n}") for n in range(clients)]
    conversation_ids = []
    for _ in range(clients):
        conversation = await conversations.insert_conversation(
            pool, user_id=user_id, draft=ConversationDraft(title="events")
        )
        conversation_ids.append(conversation.id)
    return Logs(task_ids, conversation_ids)


# --- one operation of each contender ----------------------------------------------------


async def task_raw(pool: Pool, user_id: UUID, task_id: UUID, n: int) -> None:
    # A worker's append (user_id None), one event: the arguments the gateway passes.
    await pool.fetch(APPEND_TASK_SQL, None, task_id, [EVENT_TYPE], [payload(n)])


async def task_mnemo(pool: Pool, user_id: UUID, task_id: UUID, n: int) -> None:
    await events.append_task_events(
        pool, task_id=task_id, events=[EventDraft(type=EVENT_TYPE, payload=payload(n))]
    )


async def conversation_raw(pool: Pool, user_id: UUID, conversation_id: UUID, n: int) -> None:
    await pool.fetch(APPEND_CONVERSATION_SQL, user_id, conversation_id, ["plan"], [payload(n)])


async def conversation_mnemo(pool: Pool, user_id: UUID, conversation_id: UUID, n: int) -> None:
    await events.append_conversation_events(
        pool,
        user_id=user_id,
        conversation_id=conversation_id,
        events=[EventDraft(type="plan", payload=payload(n))],
    )


Append: TypeAlias = Callable[[Pool, UUID, UUID, int], Awaitable[None]]


@dataclass(frozen=True)
class AppendWorkload:
    key: str
    title: str
    log: Literal["task", "conversation"]
    clients: int
    ops: dict[Contender, Append]


def append_workloads(clients: int) -> list[AppendWorkload]:
    task = {"raw": task_raw, "mnemo": task_mnemo}
    conversation = {"raw": conversation_raw, "mnemo": conversation_mnemo}
    return [
        AppendWorkload("task_1", "task event, 1 client", "task", 1, task),
        AppendWorkload(
            "task_n", f"task event, {clients} clients (own tasks)", "task", clients, task
        ),
        AppendWorkload(
            "conversation_1", "conversation event, 1 client", "conversation", 1, conversation
        ),
    ]


@dataclass
class Result:
    key: str
    title: str
    unit: str  # what the samples count per second
    target: float | None
    # per contender ("raw", "mnemo", and "http" for replays over HTTP): one number a round
    samples: dict[str, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )
    # appends: this process's CPU per operation in µs, per contender, one number a round (the
    # client's own cost, which the noise of commits on a busy machine does not blur)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def cpu(self, contender: str) -> float:
        return statistics.median(self.cpu_us[contender])

    def median(self, contender: str) -> float:
        return statistics.median(self.samples[contender])

    @property
    def ratio(self) -> float:
        return self.median("mnemo") / self.median("raw")

    @property
    def round_ratios(self) -> list[float]:
        return [m / r for r, m in zip(self.samples["raw"], self.samples["mnemo"], strict=True)]

    @property
    def passed(self) -> bool:
        return self.target is None or self.ratio >= self.target

    def as_json(self) -> dict[str, Any]:
        measured = [name for name, samples in self.samples.items() if samples]
        return {
            "workload": self.key,
            "title": self.title,
            "unit": self.unit,
            **{name: round(self.median(name), 2) for name in measured},
            "ratio": round(self.ratio, 4),
            **(
                {"http_ratio": round(self.median("http") / self.median("raw"), 4)}
                if "http" in measured
                else {}
            ),
            **(
                {f"{name}_cpu_us_per_op": round(self.cpu(name), 1) for name in self.cpu_us}
                if self.cpu_us
                else {}
            ),
            "target": self.target,
            "result": "PASS" if self.passed else "BELOW",
            "rounds": {
                **{name: [round(x, 2) for x in self.samples[name]] for name in measured},
                "ratio": [round(x, 4) for x in self.round_ratios],
            },
        }


async def _appends(
    pool: Pool, workload: AppendWorkload, contender: Contender, user_id: UUID, logs: Logs, ops: int
) -> tuple[float, float]:
    """``ops`` appends by ``workload.clients`` clients together; returns the seconds, and the
    CPU seconds of this process."""
    append = workload.ops[contender]
    ids = logs.task_ids if workload.log == "task" else logs.conversation_ids

    async def client(log_id: UUID, n: int) -> None:
        for i in range(n):
            await append(pool, user_id, log_id, i)

    share = [
        ops // workload.clients + (i < ops % workload.clients) for i in range(workload.clients)
    ]
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(ids[i], share[i]) for i in range(workload.clients)))
    return time.perf_counter() - start, time.process_time() - cpu


async def measure_appends(
    pools: dict[Contender, Pool], fixture: Fixture, args: argparse.Namespace
) -> list[Result]:
    clients = args.events_clients
    logs = {c: await make_logs(pools[c], fixture.user_id, clients) for c in CONTENDERS}
    # Same statement, same results: one append of each returns the event written.
    raw = await pools["raw"].fetch(
        APPEND_TASK_SQL, None, logs["raw"].task_ids[0], [EVENT_TYPE], [payload(0)]
    )
    written = await events.append_task_events(
        pools["mnemo"],
        task_id=logs["mnemo"].task_ids[0],
        events=[EventDraft(type=EVENT_TYPE, payload=payload(0))],
    )
    if [(r["seq"], r["type"], r["payload"]) for r in raw] != [
        (e.seq, e.type, e.payload) for e in written
    ]:
        raise RuntimeError(f"raw and gateway appends differ: {raw!r} / {written!r}")
    results = []
    for workload in append_workloads(clients):
        result = Result(workload.key, workload.title, "appends/s", APPEND_TARGET)
        result.cpu_us = {contender: [] for contender in CONTENDERS}
        for contender in CONTENDERS:  # warm-up
            await _appends(
                pools[contender], workload, contender, fixture.user_id, logs[contender], 100
            )
        for round_ in range(args.rounds):
            done = dict.fromkeys(CONTENDERS, 0)
            elapsed = dict.fromkeys(CONTENDERS, 0.0)
            cpu = dict.fromkeys(CONTENDERS, 0.0)
            gc.collect()
            turn = 0
            while min(done.values()) < args.events_appends:
                order = CONTENDERS if (round_ + turn) % 2 == 0 else CONTENDERS[::-1]
                for contender in order:
                    ops = min(args.events_slice, args.events_appends - done[contender])
                    seconds, cpu_seconds = await _appends(
                        pools[contender], workload, contender, fixture.user_id, logs[contender], ops
                    )
                    elapsed[contender] += seconds
                    cpu[contender] += cpu_seconds
                    done[contender] += ops
                turn += 1
            for contender in CONTENDERS:
                result.samples[contender].append(done[contender] / elapsed[contender])
                result.cpu_us[contender].append(cpu[contender] / done[contender] * 1e6)
            raw, mnemo = result.samples["raw"][-1], result.samples["mnemo"][-1]
            log(
                f"events, {workload.title:<32} round {round_ + 1}/{args.rounds}: "
                f"raw {raw:>7,.0f}  mnemo {mnemo:>7,.0f} appends/s  ({mnemo / raw:.3f})"
            )
        results.append(result)
    return results


# --- replay -----------------------------------------------------------------------------


async def replay_raw(pool: Pool, user_id: UUID, task_id: UUID, page: int) -> int:
    """Every event of the log, in pages of ``page``, by the statement the gateway runs."""
    after, count = 0, 0
    while True:
        rows = await pool.fetch(PAGE_TASK_SQL, user_id, task_id, after, page)
        if rows[0]["seq"] is None:
            return count
        count += len(rows)
        after = rows[-1]["seq"]
        if after >= rows[0]["last_seq"]:
            return count


async def replay_mnemo(pool: Pool, user_id: UUID, task_id: UUID, page: int) -> int:
    after, count = 0, 0
    while True:
        got = await events.list_task_events(
            pool, user_id=user_id, task_id=task_id, after=after, limit=page
        )
        if not got.items:
            return count
        count += len(got.items)
        after = got.items[-1].seq
        if after >= got.last_seq:
            return count


Replay: TypeAlias = Callable[[], Awaitable[int]]


async def measure_replays(
    replays: dict[str, Replay], expected: int, args: argparse.Namespace, result: Result
) -> None:
    """Rounds of ``--events-replays`` replays per contender, taking turns one replay at a
    time; ``result.samples[contender]`` gets each round's replays/s."""
    names = list(replays)
    for name in names:  # warm-up, and every replay reads the whole log
        count = await replays[name]()
        if count != expected:
            raise RuntimeError(f"{name} replay read {count} events of {expected}")
    for round_ in range(args.rounds):
        elapsed = dict.fromkeys(names, 0.0)
        gc.collect()
        for turn in range(args.events_replays):
            order = names if (round_ + turn) % 2 == 0 else names[::-1]
            for name in order:
                start = time.perf_counter()
                await replays[name]()
                elapsed[name] += time.perf_counter() - start
        for name in names:
            result.samples[name].append(args.events_replays / elapsed[name])
        log(
            f"events, replay of {expected:,} round {round_ + 1}/{args.rounds}: "
            + "  ".join(f"{n} {1000 / result.samples[n][-1]:.1f} ms" for n in names)
        )
