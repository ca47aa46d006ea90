"""The branches suite: reading the active branch of a deep conversation with many branches,
beside the same reads of a conversation of one branch; the cost of a switch and of reading an
old branch by its leaf.

Data (one fresh database): a linear conversation of ``branch_messages`` messages, and two
conversations of as many messages on ``branches`` branches, grown as a chat grows: every
``branch_messages / branches`` messages the user regenerates an answer or edits a question
1 to 4 messages back, and the chat goes on from there. In the first the newest branch is
active (the usual case: a few inactive messages lie between the active ones); in the second
an old branch (forked at a tenth of the depth) was made active again, so nine tenths of the
messages lie above its newest page on other branches. Each round, the workloads take turns
(``pages`` operations each); the table shows the median per operation over the rounds and the
ratio of each read to the same read of the linear conversation (the issue's target: the newest
page of the active branch >= 0.5x the linear page). Then the same reads with
messages_active_idx dropped, to show what it is for.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from bench._report import log, table
from dal.database import open_pool
from dal.gateways import branches, messages
from dal.ids import new_id
from dal.settings import Settings
from dal.usecases import branches as branching

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "branch_messages": (10_000, 10_000, "messages in each conversation of the branches suite"),
    "branches": (100, 100, "branches of the branched conversations"),
    "branch_ops": (300, 60, "operations per workload per round (branches suite)"),
}
PAGE = 50
TARGET = 0.5


@dataclass
class Conversation:
    id: UUID
    seqs: list[int]  # seq -> index + 1
    ids: list[UUID]
    active: list[int]  # the active path's seqs
    leaves: list[int]  # the leaf of every branch, oldest first


@dataclass
class Workload:
    key: str
    title: str
    baseline: str | None  # the key of the workload it is compared with
    call: Callable[[], Awaitable[Any]]
    target: float | None = None
    samples: list[float] = field(default_factory=list)  # seconds per operation, per round

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Outcome:
    user_id: UUID
    sections: list[tuple[str, list[Workload]]]
    notes: list[str]

    def workloads(self) -> list[Workload]:
        return [w for _, ws in self.sections for w in ws]

    def ratio(self, workload: Workload, section: list[Workload]) -> float | None:
        if workload.baseline is None:
            return None
        base = next(w for w in section if w.key == workload.baseline)
        return base.median / workload.median

    @property
    def passed(self) -> bool:
        return all(
            (r := self.ratio(w, ws)) is not None and r >= w.target
            for _, ws in self.sections
            for w in ws
            if w.target is not None
        )


def _tree(count: int, branches: int, rng: random.Random) -> tuple[list[int | None], list[int]]:
    """The parent of each message (index = seq - 1) of a chat of ``count`` messages that
    forked ``branches - 1`` times 1 to 4 messages back, and the leaf of each branch."""
    parents: list[int | None] = []
    path: list[int] = []
    leaves: list[int] = []
    every = max(count // branches, 1)
    for seq in range(1, count + 1):
        if seq > 1 and seq % every == 0 and len(leaves) < branches - 1 and len(path) > 5:
            leaves.append(path[-1])
            del path[len(path) - rng.randint(1, 4) :]
        parents.append(path[-1] if path else None)
        path.append(seq)
    leaves.append(path[-1])
    return parents, leaves


def _path(parents: list[int | None], leaf: int) -> list[int]:
    out: list[int] = []
    seq: int | None = leaf
    while seq is not None:
        out.append(seq)
        seq = parents[seq - 1]
    return out[::-1]


async def _seed(
    conn: asyncpg.Connection[Any], user_id: UUID, parents: list[int | None], leaf: int
) -> Conversation:
    """A conversation of the caller's holding these messages, the path to ``leaf`` active."""
    conversation_id = new_id()
    active = _path(parents, leaf)
    on = set(active)
    ids = [new_id() for _ in parents]
    await conn.execute(
        "INSERT INTO conversations (id, user_id, title) VALUES ($1, $2, 'bench')",
        conversation_id,
        user_id,
    )
    await conn.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " VALUES ($1, $2, 'owner') ON CONFLICT DO NOTHING",
        conversation_id,
        user_id,
    )
    text = "A question or an answer of a typical length in a chat. " * 4
    await conn.execute(
        """
        INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,
                              parts_count, metadata_bytes, parent_seq, active, user_id, sender_id)
        SELECT $1, s.seq, s.id, CASE WHEN s.seq % 2 = 0 THEN 'assistant' ELSE 'user' END,
               jsonb_build_array(jsonb_build_object('type', 'text', 'text', $2::text)), $2,
               mnemo_parts_bytes(jsonb_build_array(jsonb_build_object('type', 'text',
                                                                      'text', $2::text))),
               1, 2, s.parent, s.active, $3, $3
          FROM unnest($4::int8[], $5::uuid[], $6::int8[], $7::bool[])
               AS s(seq, id, parent, active)
        """,
        conversation_id,
        text,
        user_id,
        list(range(1, len(parents) + 1)),
        ids,
        parents,
        [seq in on for seq in range(1, len(parents) + 1)],
    )
    await conn.execute(
        "UPDATE conversations SET last_seq = $2::int8, message_count = $2::int8, leaf_seq = $3"
        " WHERE id = $1",
        conversation_id,
        len(parents),
        leaf,
    )
    return Conversation(conversation_id, list(range(1, len(parents) + 1)), ids, active, [])


async def _measure(workloads: list[Workload], ops: int, rounds: int) -> None:
    for workload in workloads:  # warm-up: plans, caches
        for _ in range(max(ops // 5, 5)):
            await workload.call()
    for round_no in range(rounds):
        order = workloads if round_no % 2 == 0 else workloads[::-1]
        for workload in order:
            started = time.perf_counter()
            for _ in range(ops):
                await workload.call()
            workload.samples.append((time.perf_counter() - started) / ops)


async def _check_active_page(
    pool: Any, user_id: UUID, conv: Conversation, notes: list[str], what: str
) -> None:
    page = await messages.list_messages(pool, user_id=user_id, conversation_id=conv.id, limit=PAGE)
    got = [m.seq for m in page.items]
    if got != conv.active[-PAGE:]:
        notes.append(
            f"{what}: GET .../messages did not return the active branch's newest page "
            f"(got seqs {got[:3]}..., expected {conv.active[-PAGE:][:3]}...): "
            "list_messages_* do not follow the active branch yet"
        )


async def run(url: str, args: argparse.Namespace) -> Outcome:
    count, n_branches, ops = args.branch_messages, args.branches, args.branch_ops
    rng = random.Random(20261206)
    settings = Settings(database_url=url, db_min_connections=2, db_max_connections=2)
    pool = await open_pool(settings)
    notes: list[str] = []
    try:
        async with pool.acquire() as conn:
            user_id = new_id()
            await conn.execute(
                "INSERT INTO users (id, username) VALUES ($1, 'bench-branches')", user_id
            )
            log(f"branches: seeding 3 conversations of {count} messages")
            linear = await _seed(conn, user_id, [None, *range(1, count)], count)
            parents, leaves = _tree(count, n_branches, rng)
            newest = await _seed(conn, user_id, parents, leaves[-1])
            newest.leaves = leaves
            old_leaf = leaves[len(leaves) // 10]
            old = await _seed(conn, user_id, parents, old_leaf)
            old.leaves = leaves
            await conn.execute("ANALYZE")
        for conv, what in ((newest, "newest branch active"), (old, "old branch active")):
            await _check_active_page(pool, user_id, conv, notes, what)
        depth = count // 2
        newest_depth = newest.active[len(newest.active) // 2]

        def page(conv: Conversation, **kw: Any) -> Callable[[], Awaitable[Any]]:
            return lambda: messages.list_messages(
                pool, user_id=user_id, conversation_id=conv.id, limit=PAGE, **kw
            )

        def by_leaf(conv: Conversation, leaf: int, **kw: Any) -> Callable[[], Awaitable[Any]]:
            return lambda: branches.list_branch_messages(
                pool,
                user_id=user_id,
                conversation_id=conv.id,
                leaf_id=conv.ids[leaf - 1],
                limit=PAGE,
                **kw,
            )

        reads = [
            Workload("linear", "linear: newest page (50)", None, page(linear)),
            Workload(
                "active",
                f"{n_branches} branches, newest active: newest page",
                "linear",
                page(newest),
                TARGET,
            ),
            Workload(
                "old_active",
                f"{n_branches} branches, old branch active: newest page",
                "linear",
                page(old),
                TARGET,
            ),
            Workload(
                "linear_deep", f"linear: page before seq {depth}", None, page(linear, before=depth)
            ),
            Workload(
                "active_deep",
                f"{n_branches} branches: page before seq {newest_depth} (mid-branch)",
                "linear_deep",
                page(newest, before=newest_depth),
            ),
            Workload(
                "leaf_walk",
                "by leaf (parent walk): newest page of the active branch",
                "linear",
                by_leaf(newest, newest.active[-1]),
            ),
            Workload(
                "leaf_walk_deep",
                f"by leaf (parent walk): page before seq {newest_depth}",
                "linear_deep",
                by_leaf(newest, newest.active[-1], before=newest_depth),
            ),
        ]
        # Switches: between the two newest branches (a few messages each side), and between
        # the newest branch and the old one (the whole depth on both sides); each pair of
        # switches comes back to where it started.
        near = (newest.leaves[-2], newest.leaves[-1])
        far = (old_leaf, newest.leaves[-1])

        def switch_pair(pair: tuple[int, int], descend: bool) -> Callable[[], Awaitable[Any]]:
            async def go() -> None:
                for leaf in pair:
                    await branching.switch_branch(
                        pool,
                        user_id=user_id,
                        conversation_id=newest.id,
                        message_id=newest.ids[leaf - 1],
                        descend=descend,
                    )

            return go

        # The sibling of the active branch's message where the newest fork happened, made
        # active with descend (its subtree is walked to find the newest message below).
        sibling_pair = _fork_siblings(parents, near)

        switches = [
            Workload(
                "switch_near",
                "switch to a neighbouring branch and back (2 switches)",
                None,
                switch_pair(near, False),
            ),
            Workload(
                "switch_near_descend",
                "activate a sibling (descend) and back (2 switches)",
                None,
                switch_pair(sibling_pair, True),
            ),
            Workload(
                "switch_far",
                f"switch to the branch forked at seq ~{count // 10} and back (2 switches)",
                None,
                switch_pair(far, False),
            ),
        ]
        log("branches: measuring reads and switches")
        await _measure(reads, ops, args.rounds)
        await _measure(switches[:2], ops, args.rounds)
        await _measure(switches[2:], max(ops // 60, 3), args.rounds)  # ~2 s each
        sections = [("reads", reads), ("switches", switches)]
        # The same reads without messages_active_idx: the active branch read through
        # messages_pkey with a filter on active.
        async with pool.acquire() as conn:
            await conn.execute("DROP INDEX messages_active_idx")
            await conn.execute("ANALYZE messages")
        await pool.expire_connections()  # no statement prepared with the index survives
        without = [
            Workload(w.key, w.title, w.baseline, w.call, None)
            for w in reads
            if w.key in ("linear", "active", "old_active")
        ]
        log("branches: measuring reads without messages_active_idx")
        await _measure(without, ops, args.rounds)
        sections.append(("reads without messages_active_idx", without))
        return Outcome(user_id, sections, notes)
    finally:
        await pool.close()


def _fork_siblings(parents: list[int | None], pair: tuple[int, int]) -> tuple[int, int]:
    """The two children of the newest fork on the way to these two leaves: the first message
    of each branch below the point where they part."""
    a, b = (_path(parents, leaf) for leaf in pair)
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    return a[shared], b[shared]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def render(outcome: Outcome) -> str:
    parts: list[str] = []
    for name, section in outcome.sections:
        rows = []
        for w in section:
            ratio = outcome.ratio(w, section)
            rows.append(
                [
                    w.title,
                    _ms(w.median),
                    f"{1 / w.median:,.0f}",
                    "" if ratio is None else f"{ratio:.2f}x",
                    "" if w.target is None else f">= {w.target}x",
                ]
            )
        parts.append(
            f"{name}\n" + table(["workload", "ms/op", "ops/s", "vs linear", "target"], rows)
        )
    parts.extend(f"note: {note}" for note in outcome.notes)
    return "\n\n".join(parts)


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        name: [
            {
                "workload": w.key,
                "title": w.title,
                "seconds_per_op": w.median,
                "rounds": w.samples,
                "ratio_to_linear": outcome.ratio(w, section),
                "target": w.target,
            }
            for w in section
        ]
        for name, section in outcome.sections
    } | {"notes": outcome.notes, "passed": outcome.passed}
