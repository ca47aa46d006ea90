"""The reads suite: a user's unread counts over all their conversations (the issue's target:
1,000 conversations, p95 <= 10 ms), beside a plain count of one conversation's unread
messages run by raw asyncpg (the baseline: the least a client showing one count would run).

Data: ``conversations`` conversations of two members (a writer and the reader), each with
``messages`` messages from the writer; the reader's read positions are spread so that about a
third of the conversations are read to the end and the rest have 1 to ``messages`` unread
(typical), and, in a second database state, the reader has read nothing in any of them, so
every count stops at the cap (the worst case). ``VACUUM ANALYZE`` after seeding (old messages
are all-visible in a live database; the newest may not be, and cost a heap visit each).

Each contender runs alone on a held connection of its own pool (latency, not throughput);
they take turns of ``slice`` calls within a round. The table shows the median over rounds of
each round's p50 and p95, and the ratio of the p95s (unread totals / the one-count baseline).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from bench._report import log, table
from dal.database import pool_options
from dal.gateways import reads
from dal.ids import new_id
from dal.settings import Settings

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "reads_conversations": (1000, 1000, "conversations of the reader"),
    "reads_messages": (150, 150, "messages per conversation (the worst case needs > the cap)"),
    "reads_calls": (400, 100, "calls per contender per round and workload"),
    "reads_slice": (50, 25, "calls per turn: the contenders take turns within a round"),
}
TARGET_P95_MS = 10.0

# A plain unread count of one conversation (the baseline): no membership, no cap, no rules.
BASELINE = "SELECT count(*) FROM messages WHERE conversation_id = $1 AND seq > $2"


@dataclass
class Result:
    workload: str
    title: str
    # per round: (p50, p95) in ms
    ours: list[tuple[float, float]] = field(default_factory=list)
    baseline: list[tuple[float, float]] = field(default_factory=list)
    total: int = 0

    def median(self, which: str, index: int) -> float:
        rounds = self.ours if which == "ours" else self.baseline
        return statistics.median(r[index] for r in rounds)

    @property
    def ratio(self) -> float:
        return self.median("ours", 1) / self.median("baseline", 1)

    @property
    def passed(self) -> bool:
        return self.median("ours", 1) <= TARGET_P95_MS

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "title": self.title,
            "unread_total": self.total,
            "p50_ms": round(self.median("ours", 0), 3),
            "p95_ms": round(self.median("ours", 1), 3),
            "baseline_p50_ms": round(self.median("baseline", 0), 3),
            "baseline_p95_ms": round(self.median("baseline", 1), 3),
            "p95_ratio": round(self.ratio, 2),
            "target_p95_ms": TARGET_P95_MS,
            "result": "PASS" if self.passed else "BELOW",
            "rounds": {"ours": self.ours, "baseline": self.baseline},
        }


async def seed(conn: Any, conversations: int, messages: int) -> tuple[UUID, list[UUID]]:
    """The writer, the reader and their conversations; returns (reader, conversation ids)."""
    writer, reader = new_id(), new_id()
    await conn.execute(
        "INSERT INTO users (id, username) VALUES ($1, 'writer'), ($2, 'reader')", writer, reader
    )
    # Other users in the same conversations: the reader's rows are a small part of the table.
    await conn.execute(
        "INSERT INTO users (id, username) SELECT gen_random_uuid(), 'other' || i"
        " FROM generate_series(1, 20) AS i"
    )
    ids = [new_id() for _ in range(conversations)]
    await conn.execute(
        "INSERT INTO conversations (id, user_id, title, last_seq, leaf_seq, message_count)"
        " SELECT c, $2, 'chat', $3::int8, $3::int8, $3::int4 FROM unnest($1::uuid[]) AS c",
        ids,
        writer,
        messages,
    )
    await conn.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role, last_read_seq,"
        " delivered_seq)"
        " SELECT c, $2, 'owner', $3, $3 FROM unnest($1::uuid[]) AS c"
        " ON CONFLICT (conversation_id, user_id) DO NOTHING",
        ids,
        writer,
        messages,
    )
    await conn.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " SELECT c, u.id, 'member' FROM unnest($1::uuid[]) AS c, users AS u"
        " WHERE u.username LIKE 'other%' OR u.id = $2",
        ids,
        reader,
    )
    await conn.execute(
        "INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,"
        " parts_count, metadata_bytes, sender_id, parent_seq)"
        ' SELECT c, s, gen_random_uuid(), \'user\', \'[{"type": "text", "text": "hi"}]\','
        " 'hi', 30, 1, 2, $2, nullif(s - 1, 0)"
        " FROM unnest($1::uuid[]) AS c, generate_series(1, $3::int8) AS s",
        ids,
        writer,
        messages,
    )
    await conn.execute("VACUUM ANALYZE")
    return reader, ids


async def place_reader(
    conn: Any, reader: UUID, ids: list[UUID], messages: int, *, worst: bool
) -> list[int]:
    """The reader's positions: typical (a third read to the end, the rest 1..messages behind)
    or worst (nothing read)."""
    rng = random.Random(10)
    positions = [
        0 if worst else (messages if rng.random() < 1 / 3 else messages - rng.randint(1, 20))
        for _ in ids
    ]
    await conn.execute(
        "UPDATE conversation_members AS mm SET last_read_seq = p.seq, delivered_seq = p.seq"
        " FROM unnest($1::uuid[], $2::int8[]) AS p(c, seq)"
        " WHERE mm.conversation_id = p.c AND mm.user_id = $3",
        ids,
        positions,
        reader,
    )
    await conn.execute("VACUUM ANALYZE conversation_members")
    return positions


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _time(call: Callable[[], Awaitable[Any]], n: int, into: list[float]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        await call()
        into.append(time.perf_counter() - start)


async def measure(
    conn: Any,
    raw: Any,
    reader: UUID,
    ids: list[UUID],
    positions: list[int],
    args: argparse.Namespace,
    result: Result,
) -> None:
    rng = random.Random(7)

    async def ours() -> Any:
        return await reads.list_unread_counts(conn, user_id=reader)

    async def baseline() -> Any:
        i = rng.randrange(len(ids))
        return await raw.fetchval(BASELINE, ids[i], positions[i])

    result.total = (await ours()).total
    for _ in range(20):  # warm up both (statement caches, buffers)
        await ours()
        await baseline()
    for round_no in range(args.rounds):
        mine: list[float] = []
        theirs: list[float] = []
        gc.collect()
        done = 0
        while done < args.reads_calls:
            n = min(args.reads_slice, args.reads_calls - done)
            pair = [(ours, mine), (baseline, theirs)]
            for call, into in pair if (round_no + done) % 2 == 0 else pair[::-1]:
                await _time(call, n, into)
            done += n
        result.ours.append((_p(mine, 0.5), _p(mine, 0.95)))
        result.baseline.append((_p(theirs, 0.5), _p(theirs, 0.95)))


async def run(url: str, args: argparse.Namespace) -> list[Result]:
    settings = Settings(database_url=url, db_min_connections=2, db_max_connections=2)
    conversations, messages = args.reads_conversations, args.reads_messages
    log(f"reads: seeding {conversations} conversations of {messages} messages")
    pool: Any = await asyncpg.create_pool(url, **pool_options(settings))
    try:
        async with pool.acquire() as conn, pool.acquire() as raw:
            reader, ids = await seed(conn, conversations, messages)
            results = []
            for key, title, worst in (
                ("typical", f"{conversations} conversations, 2/3 with 1-20 unread", False),
                ("worst", f"{conversations} conversations, every count at the cap", True),
            ):
                positions = await place_reader(conn, reader, ids, messages, worst=worst)
                result = Result(key, title)
                log(f"reads: measuring {key}")
                await measure(conn, raw, reader, ids, positions, args, result)
                results.append(result)
            return results
    finally:
        await pool.close()


def render(results: list[Result]) -> str:
    rows = [
        [
            r.title,
            f"{r.total:,}",
            f"{r.median('ours', 0):.2f} ms",
            f"{r.median('ours', 1):.2f} ms",
            f"{r.median('baseline', 0):.3f} ms",
            f"{r.median('baseline', 1):.3f} ms",
            f"{r.ratio:.1f}x",
            f"<= {TARGET_P95_MS:.0f} ms" + ("" if r.passed else " (missed)"),
        ]
        for r in results
    ]
    return table(
        [
            "GET /v1/me/unread (gateway)",
            "total",
            "p50",
            "p95",
            "1 count p50",
            "1 count p95",
            "p95 ratio",
            "target p95",
        ],
        rows,
    )


def as_json(results: list[Result]) -> list[dict[str, Any]]:
    return [r.as_json() for r in results]
