"""The ORM suite: Mnemo's data layer against the ORMs its users would pick instead.

Contenders (``bench/orm/contenders.py``): raw asyncpg running Mnemo's SQL (the ceiling),
Mnemo's gateways, SQLAlchemy 2's async ORM, SQLModel and Tortoise ORM, each written the way its
documentation teaches (the module docstrings of ``bench/orm/*_side.py`` say how). All map
Mnemo's own migrated ``conversations`` and ``messages`` tables (Tortoise declares the message
id as its key, since it takes no composite key) in one database, each with a pool of
``--pool-size`` connections on the asyncpg driver.

What an append means, for every contender: the caller's conversation (the ownership check),
a gapless per-conversation ``seq`` under concurrency (the ORMs lock the conversation row
``FOR UPDATE`` and bump its ``last_seq`` counter in a transaction, the counter-row pattern this
schema is built on), the conversation's ``message_count`` and ``last_message_at`` kept, the
message's text and sizes derived and Mnemo's size limits checked (in Python for the ORMs,
``bench/orm/shape.py``). What the ORMs leave out, to their advantage: the idempotent retry by
client id (Mnemo's statement looks the id up in the same round trip) and the byte budget of a
page. A page is the newest 50 messages of a 300-message conversation, oldest first, as the
contender's own objects (Mnemo's pydantic records, ORM instances, asyncpg records).

Before timing, every contender's page must equal Mnemo's (same messages, fields and order),
and one append by each to a shared conversation must store the same message with seqs 1..n;
after every measured round of an append workload, the messages of each contender's
conversations are counted against the appends it made (and ``seq``, ``last_seq`` and
``message_count`` must agree). Within a round the contenders take turns of ``--orm-slice``
operations, the order rotating, so the drift of a noisy machine hits all alike; the table
shows median ops/s over the rounds and Mnemo / SQLAlchemy, the ratio the targets are on.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from bench._report import hot_spots, log, table
from bench.messages.workloads import Fixture, make_fixture, new_conversation
from bench.orm.contenders import PAGE_LIMIT, Mnemo, Pool, Side, open_mnemo, open_raw
from dal.ids import new_id

__all__ = ["DEFAULTS", "PACKAGES", "Result", "as_json", "render", "run"]

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "orm_warmup": (200, 50, "warm-up operations per contender and workload (0: none)"),
    "orm_appends": (1000, 150, "appends per contender per round, one client"),
    "orm_concurrent_appends": (1600, 240, "appends per contender per round, all clients together"),
    "orm_clients": (16, 16, "concurrent clients of the concurrent append workload"),
    "orm_pages": (1000, 150, "pages read per contender per round"),
    "orm_page_messages": (300, 300, "messages in the conversation the pages are read from"),
    "orm_slice": (100, 50, "operations per turn: the contenders take turns within a round"),
}

# The ORMs are the optional extra "bench" (``make install-bench``): imported when the suite runs.
PACKAGES = ("sqlalchemy", "sqlmodel", "tortoise-orm")
CONTENDERS = ("raw", "mnemo", "sqlalchemy", "sqlmodel", "tortoise")
Opener = Callable[[str, int], Awaitable[Side]]


def openers() -> dict[str, Opener]:
    from bench.orm import sqlalchemy_side, sqlmodel_side, tortoise_side

    return {
        "raw": open_raw,
        "mnemo": open_mnemo,
        "sqlalchemy": sqlalchemy_side.open_side,
        "sqlmodel": sqlmodel_side.open_side,
        "tortoise": tortoise_side.open_side,
    }


TITLES = {
    "raw": "raw asyncpg",
    "mnemo": "Mnemo",
    "sqlalchemy": "SQLAlchemy ORM",
    "sqlmodel": "SQLModel",
    "tortoise": "Tortoise",
}
BASELINE = "sqlalchemy"  # the targets are Mnemo / SQLAlchemy ORM

COUNT_SQL = """
SELECT c.id, c.last_seq, c.message_count, count(m.seq) AS stored,
       coalesce(max(m.seq), 0) AS max_seq
  FROM conversations AS c
  LEFT JOIN messages AS m ON m.conversation_id = c.id
 WHERE c.id = ANY($1::uuid[])
 GROUP BY c.id
"""
STORED_SQL = """
SELECT seq, role, parts, content, metadata, status, parts_bytes, parts_count, metadata_bytes
  FROM messages WHERE conversation_id = $1 ORDER BY seq
"""


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: Literal["append", "page"]
    target: float  # minimum Mnemo / SQLAlchemy ORM ratio
    ops: int
    clients: int

    async def prepare(self, pool: Pool, fixture: Fixture) -> list[UUID]:
        """Appends: a fresh conversation per client (not timed); pages: the fixture's."""
        if self.kind == "append":
            return [await new_conversation(pool, fixture.user_id) for _ in range(self.clients)]
        return [fixture.page_conversation_id] * self.clients

    async def run(self, side: Side, user_id: UUID, targets: list[UUID], ops: int) -> float:
        """About ``ops`` operations split over the clients; returns the seconds taken."""
        operation = side.append if self.kind == "append" else side.page
        per_client = max(1, ops // self.clients)

        async def client(conversation_id: UUID) -> None:
            for _ in range(per_client):
                await operation(user_id, conversation_id)

        start = time.perf_counter()
        await asyncio.gather(*(client(target) for target in targets))
        return time.perf_counter() - start

    def done(self, ops: int) -> int:
        return max(1, ops // self.clients) * self.clients


def workloads(args: argparse.Namespace) -> list[Workload]:
    clients = args.orm_clients
    return [
        Workload("append_sequential", "append, 1 client", "append", 4.0, args.orm_appends, 1),
        Workload(
            "append_concurrent",
            f"append, {clients} clients",
            "append",
            4.0,
            args.orm_concurrent_appends,
            clients,
        ),
        Workload("page_50", f"page of {PAGE_LIMIT}, 1 client", "page", 2.0, args.orm_pages, 1),
    ]


@dataclass
class Result:
    workload: Workload
    samples: dict[str, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )

    def median(self, contender: str) -> float:
        return statistics.median(self.samples[contender])

    def ratio(self, contender: str = BASELINE) -> float:
        return self.median("mnemo") / self.median(contender)

    @property
    def round_ratios(self) -> list[float]:
        return [m / b for m, b in zip(self.samples["mnemo"], self.samples[BASELINE], strict=True)]

    @property
    def passed(self) -> bool:
        return self.ratio() >= self.workload.target

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload.key,
            "title": self.workload.title,
            "ops_per_round": self.workload.ops,
            "clients": self.workload.clients,
            "ops_s": {c: round(self.median(c), 1) for c in CONTENDERS},
            "mnemo_over": {c: round(self.ratio(c), 4) for c in CONTENDERS if c != "mnemo"},
            "ratio": round(self.ratio(), 4),
            "target": self.workload.target,
            "result": "PASS" if self.passed else "BELOW",
            "rounds": {
                "ops_s": {c: [round(x, 1) for x in self.samples[c]] for c in CONTENDERS},
                "ratio": [round(x, 4) for x in self.round_ratios],
            },
        }


# --- the checks -------------------------------------------------------------------------


async def check_same_results(sides: dict[str, Side], pool: Pool, fixture: Fixture) -> None:
    """Every contender does the same work: fail loudly if their answers differ."""
    user_id, conversation_id = fixture.user_id, fixture.page_conversation_id
    expected = sides["mnemo"].items(await sides["mnemo"].page(user_id, conversation_id))
    if len(expected) != PAGE_LIMIT:
        raise RuntimeError(f"Mnemo's page holds {len(expected)} messages, not {PAGE_LIMIT}")
    for name, side in sides.items():
        got = side.items(await side.page(user_id, conversation_id))
        if got != expected:
            raise RuntimeError(f"{name}'s page differs from Mnemo's: not the same work")
    shared = await new_conversation(pool, user_id)
    for side in sides.values():
        await side.append(user_id, shared)
    rows = [dict(row) for row in await pool.fetch(STORED_SQL, shared)]
    if [row.pop("seq") for row in rows] != list(range(1, len(sides) + 1)):
        raise RuntimeError("the appends did not get seqs 1..n")
    for name, row in zip(sides, rows, strict=True):
        if row != rows[1]:  # Mnemo's
            raise RuntimeError(f"{name} stored another message than Mnemo: {row} != {rows[1]}")
    # Another user's append stores nothing (the ORMs and Mnemo raise; raw gets no row back).
    stranger = new_id()
    for side in sides.values():
        try:
            await side.append(stranger, shared)
        except Exception:
            pass
    await check_counts(pool, [shared], len(sides), "every contender")


async def check_counts(pool: Pool, conversations: list[UUID], expected: int, who: str) -> None:
    """The appends all landed: ``expected`` messages over ``conversations``, seqs gapless."""
    rows = await pool.fetch(COUNT_SQL, conversations)
    stored = sum(row["stored"] for row in rows)
    if len(rows) != len(conversations) or stored != expected:
        raise RuntimeError(f"{who}: {stored} messages stored, {expected} appended")
    for row in rows:
        if not row["stored"] == row["max_seq"] == row["last_seq"] == row["message_count"]:
            raise RuntimeError(f"{who}: conversation {row['id']} counts disagree: {dict(row)}")


# --- measuring --------------------------------------------------------------------------


async def measure(
    sides: dict[str, Side],
    pool: Pool,
    workload: Workload,
    fixture: Fixture,
    *,
    slice_ops: int,
    round_: int,
) -> dict[str, float]:
    """One round: each contender runs ``workload.ops`` operations in turns of ``slice_ops``,
    the order rotating every turn. Returns the ops/s of each."""
    targets = {c: await workload.prepare(pool, fixture) for c in CONTENDERS}
    done = dict.fromkeys(CONTENDERS, 0)
    elapsed = dict.fromkeys(CONTENDERS, 0.0)
    gc.collect()
    turn = 0
    while min(done.values()) < workload.ops:
        k = (round_ + turn) % len(CONTENDERS)
        for contender in CONTENDERS[k:] + CONTENDERS[:k]:
            ops = min(slice_ops, workload.ops - done[contender])
            if ops <= 0:
                continue
            side = sides[contender]
            elapsed[contender] += await workload.run(side, fixture.user_id, targets[contender], ops)
            done[contender] += workload.done(ops)
        turn += 1
    if workload.kind == "append":
        for contender in CONTENDERS:
            await check_counts(pool, targets[contender], done[contender], contender)
    return {c: done[c] / elapsed[c] for c in CONTENDERS}


async def run_profile(
    sides: dict[str, Side], pool: Pool, workload: Workload, fixture: Fixture
) -> None:
    for contender in CONTENDERS:
        targets = await workload.prepare(pool, fixture)
        profiler = cProfile.Profile()
        profiler.enable()
        seconds = await workload.run(sides[contender], fixture.user_id, targets, workload.ops)
        profiler.disable()
        rate = workload.done(workload.ops) / seconds
        print(hot_spots(profiler, f"{workload.title}, {contender} ({rate:,.0f} ops/s, cProfile)"))


async def run(url: str, args: argparse.Namespace) -> list[Result]:
    """Measure every workload on the migrated database at ``url``."""
    sides: dict[str, Side] = {}
    try:
        for contender, opener in openers().items():
            sides[contender] = await opener(url, args.pool_size)
        mnemo = sides["mnemo"]
        assert isinstance(mnemo, Mnemo)
        pool = mnemo.pool
        log(f"orm: {', '.join(TITLES.values())}; pools of {args.pool_size}")
        fixture = await make_fixture(pool, page_messages=args.orm_page_messages)
        await check_same_results(sides, pool, fixture)
        log("orm: every contender returns the same page and stores the same message")
        chosen = workloads(args)
        results: list[Result] = []
        for workload in chosen:
            result = Result(workload)
            if args.orm_warmup:
                for contender in CONTENDERS:
                    targets = await workload.prepare(pool, fixture)
                    await workload.run(sides[contender], fixture.user_id, targets, args.orm_warmup)
            for round_ in range(args.rounds):
                ops_s = await measure(
                    sides, pool, workload, fixture, slice_ops=args.orm_slice, round_=round_
                )
                for contender in CONTENDERS:
                    result.samples[contender].append(ops_s[contender])
                rates = "  ".join(f"{c} {ops_s[c]:>7,.0f}" for c in CONTENDERS)
                log(f"{workload.title:<20} round {round_ + 1}/{args.rounds}: {rates} ops/s")
            results.append(result)
        if args.profile:
            for workload in chosen:
                await run_profile(sides, pool, workload, fixture)
        return results
    finally:
        for side in sides.values():
            await side.close()


def render(results: list[Result]) -> str:
    header = (
        "workload",
        *(f"{TITLES[c]} ops/s" for c in CONTENDERS),
        "Mnemo / SQLAlchemy",
        "rounds",
        "/ SQLModel",
        "/ Tortoise",
        "target",
        "result",
    )
    rows = [
        (
            r.workload.title,
            *(f"{r.median(c):,.0f}" for c in CONTENDERS),
            f"{r.ratio():.2f}",
            f"{min(r.round_ratios):.2f}-{max(r.round_ratios):.2f}",
            f"{r.ratio('sqlmodel'):.2f}",
            f"{r.ratio('tortoise'):.2f}",
            f">= {r.workload.target:.1f}",
            "PASS" if r.passed else "BELOW",
        )
        for r in results
    ]
    return table(header, rows)


def as_json(results: list[Result]) -> dict[str, Any]:
    return {
        "median_of": "ops/s per contender over the rounds; ratio = Mnemo / SQLAlchemy ORM",
        "results": [result.as_json() for result in results],
    }
