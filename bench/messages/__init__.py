"""The messages suite: Mnemo's gateways against raw asyncpg running the same SQL.

Both contenders get their own pool, built by ``asyncpg.create_pool(url,
**dal.database.pool_options(settings))`` from the same settings (same codecs, init and
statement cache). Each workload is warmed up, then measured in rounds; within a round the two
contenders take turns of a few hundred operations (who goes first alternates), so the drift of
a noisy machine hits both alike. The table shows the median ops/s of each over the rounds, their
ratio, and the spread of the per-round ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import statistics
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench._report import hot_spots, log, table
from bench.messages.workloads import (
    CONTENDERS,
    Contender,
    Fixture,
    Pool,
    Workload,
    check_same_results,
    make_fixture,
    workloads,
)
from dal.database import pool_options
from dal.settings import Settings

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "warmup": (300, 100, "warm-up operations per contender and workload (0: none)"),
    "appends": (2000, 200, "appends per contender per round, one client"),
    "concurrent_appends": (3200, 320, "appends per contender per round, all clients together"),
    "clients": (16, 16, "concurrent clients of the concurrent append workload"),
    "pages": (2000, 200, "pages read per contender per round"),
    "page_messages": (300, 300, "messages in the conversation the pages are read from"),
    "slice": (200, 50, "operations per turn: the contenders take turns within a round"),
}


@dataclass
class Result:
    workload: Workload
    samples: dict[Contender, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )

    def median(self, contender: Contender) -> float:
        return statistics.median(self.samples[contender])

    @property
    def ratio(self) -> float:
        return self.median("mnemo") / self.median("raw")

    @property
    def round_ratios(self) -> list[float]:
        """Mnemo / raw of each round: their spread shows how noisy the run was."""
        return [m / r for r, m in zip(self.samples["raw"], self.samples["mnemo"], strict=True)]

    @property
    def round_ratio_range(self) -> tuple[float, float]:
        return min(self.round_ratios), max(self.round_ratios)

    @property
    def passed(self) -> bool:
        return self.ratio >= self.workload.target

    def as_json(self) -> dict[str, Any]:
        raw, mnemo = self.samples["raw"], self.samples["mnemo"]
        return {
            "workload": self.workload.key,
            "title": self.workload.title,
            "ops_per_round": self.workload.ops,
            "clients": self.workload.clients,
            "raw_ops_s": round(self.median("raw"), 1),
            "mnemo_ops_s": round(self.median("mnemo"), 1),
            "ratio": round(self.ratio, 4),
            "target": self.workload.target,
            "result": "PASS" if self.passed else "BELOW",
            "rounds": {
                "raw_ops_s": [round(x, 1) for x in raw],
                "mnemo_ops_s": [round(x, 1) for x in mnemo],
                "ratio": [round(x, 4) for x in self.round_ratios],
            },
        }


async def measure(
    pools: dict[Contender, Pool],
    workload: Workload,
    fixture: Fixture,
    *,
    slice_ops: int,
    first: int,
) -> dict[Contender, float]:
    """One round: each contender runs ``workload.ops`` operations, the two taking turns of
    ``slice_ops`` operations (who goes first alternates), so that the drift of a noisy machine
    hits both alike. Returns the ops/s of each."""
    targets = {c: await workload.prepare(pools[c], fixture) for c in CONTENDERS}
    done = dict.fromkeys(CONTENDERS, 0)
    elapsed = dict.fromkeys(CONTENDERS, 0.0)
    gc.collect()
    turn = 0
    while min(done.values()) < workload.ops:
        order = CONTENDERS if (first + turn) % 2 == 0 else CONTENDERS[::-1]
        for contender in order:
            ops = min(slice_ops, workload.ops - done[contender])
            if ops <= 0:
                continue
            n, seconds = await workload.run(
                pools[contender], contender, fixture, targets[contender], ops
            )
            done[contender] += n
            elapsed[contender] += seconds
        turn += 1
    return {c: done[c] / elapsed[c] for c in CONTENDERS}


async def run_profile(pools: dict[Contender, Pool], workload: Workload, fixture: Fixture) -> None:
    for contender in CONTENDERS:
        targets = await workload.prepare(pools[contender], fixture)
        profiler = cProfile.Profile()
        profiler.enable()
        ops, seconds = await workload.run(
            pools[contender], contender, fixture, targets, workload.ops
        )
        profiler.disable()
        title = f"{workload.title}, {contender} ({ops / seconds:,.0f} ops/s under cProfile)"
        print(hot_spots(profiler, title))


async def run(url: str, args: argparse.Namespace) -> list[Result]:
    """Measure every message workload on the migrated database at ``url``."""
    settings = Settings(
        database_url=url, db_min_connections=args.pool_size, db_max_connections=args.pool_size
    )
    options = pool_options(settings)
    pools: dict[Contender, Pool] = {}
    try:
        for contender in CONTENDERS:
            pools[contender] = await asyncpg.create_pool(url, **options)
        log(
            f"messages: pools of {args.pool_size}, "
            f"statement cache {settings.db_statement_cache_size}"
        )
        fixture = await make_fixture(pools["mnemo"], page_messages=args.page_messages)
        await check_same_results(pools["raw"], pools["mnemo"], fixture)
        chosen = workloads(
            appends=args.appends,
            concurrent_appends=args.concurrent_appends,
            clients=args.clients,
            pages=args.pages,
        )
        results: list[Result] = []
        for workload in chosen:
            result = Result(workload)
            if args.warmup:
                for contender in CONTENDERS:
                    targets = await workload.prepare(pools[contender], fixture)
                    await workload.run(pools[contender], contender, fixture, targets, args.warmup)
            for round_ in range(args.rounds):
                ops_s = await measure(pools, workload, fixture, slice_ops=args.slice, first=round_)
                for contender in CONTENDERS:
                    result.samples[contender].append(ops_s[contender])
                raw, mnemo = ops_s["raw"], ops_s["mnemo"]
                log(
                    f"{workload.title:<22} round {round_ + 1}/{args.rounds}: "
                    f"raw {raw:>8,.0f}  mnemo {mnemo:>8,.0f} ops/s  ({mnemo / raw:.3f})"
                )
            results.append(result)
        if args.profile:
            for workload in chosen:
                await run_profile(pools, workload, fixture)
        return results
    finally:
        for pool in pools.values():
            await pool.close()


def render(results: list[Result]) -> str:
    header = ("workload", "raw asyncpg ops/s", "Mnemo ops/s", "ratio", "rounds", "target", "result")
    rows = [
        (
            r.workload.title,
            f"{r.median('raw'):,.0f}",
            f"{r.median('mnemo'):,.0f}",
            f"{r.ratio:.3f}",
            "{:.2f}-{:.2f}".format(*r.round_ratio_range),
            f">= {r.workload.target:.2f}",
            "PASS" if r.passed else "BELOW",
        )
        for r in results
    ]
    text = table(header, rows)
    if {"append_group", "append_sequential"} <= {r.workload.key for r in results}:
        text += (
            "\nappend to a 50-member group / single-owner append (Mnemo, same run): "
            f"{group_ratio(results):.3f} (issue 10 target >= 0.80)"
        )
    return text


def group_ratio(results: list[Result]) -> float:
    """Mnemo's append to a 50-member group over its single-owner append, in the same run."""
    by_key = {r.workload.key: r for r in results}
    return by_key["append_group"].median("mnemo") / by_key["append_sequential"].median("mnemo")


def as_json(results: list[Result]) -> dict[str, Any]:
    return {
        "median_of": "ops/s per contender over the rounds; ratio = Mnemo / raw",
        "results": [result.as_json() for result in results],
        **(
            {"group_append_ratio": round(group_ratio(results), 4)}
            if {"append_group", "append_sequential"} <= {r.workload.key for r in results}
            else {}
        ),
    }
