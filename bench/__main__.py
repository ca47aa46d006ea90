"""``python -m bench``: Mnemo's gateways against raw asyncpg on the same SQL, side by side.

Both contenders get their own pool, built by ``asyncpg.create_pool(url,
**dal.database.pool_options(settings))`` from the same settings (same codecs, init and
statement cache). Each workload is warmed up, then measured in rounds; within a round the two
contenders take turns of a few hundred operations (who goes first alternates), so the drift of
a noisy machine hits both alike. The table shows the median ops/s of each over the rounds, their
ratio, and the spread of the per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import statistics
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg

from bench import _server
from bench.workloads import (
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

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "rounds": (5, 3, "measured rounds per workload (the table shows medians)"),
    "warmup": (300, 100, "warm-up operations per contender and workload (0: none)"),
    "appends": (2000, 200, "appends per contender per round, one client"),
    "concurrent_appends": (3200, 320, "appends per contender per round, all clients together"),
    "clients": (16, 16, "concurrent clients of the concurrent append workload"),
    "pages": (2000, 200, "pages read per contender per round"),
    "page_messages": (300, 300, "messages in the conversation the pages are read from"),
    "pool_size": (10, 10, "connections in each contender's pool (min = max)"),
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")
    for name, (full, quick, text) in DEFAULTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=None,
            metavar="N",
            help=f"{text}; default {full} ({quick} with --quick)",
        )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after measuring, cProfile each workload's contenders and print the hot spots",
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default=None,
        help="set it for the benchmark database (default: the server's own setting);\n"
        "off takes the WAL flush of each append out of the measurement",
    )
    parser.add_argument(
        "--fail-below", action="store_true", help="exit 1 when a ratio is below its target"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, metavar="DIR")
    args = parser.parse_args(argv)
    for name, (full, quick, _) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


async def server_info(pool: Pool) -> dict[str, str]:
    row = await pool.fetchrow(
        "SELECT current_setting('server_version') AS server_version,"
        " current_setting('fsync') AS fsync,"
        " current_setting('synchronous_commit') AS synchronous_commit,"
        " current_setting('shared_buffers') AS shared_buffers"
    )
    assert row is not None
    return dict(row)


async def run_profile(pools: dict[Contender, Pool], workload: Workload, fixture: Fixture) -> None:
    for contender in CONTENDERS:
        targets = await workload.prepare(pools[contender], fixture)
        profiler = cProfile.Profile()
        profiler.enable()
        ops, seconds = await workload.run(
            pools[contender], contender, fixture, targets, workload.ops
        )
        profiler.disable()
        ops_s = ops / seconds
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(18)
        print(f"\n=== profile: {workload.title}, {contender} ({ops_s:,.0f} ops/s under cProfile)")
        text = out.getvalue()
        print(text[text.index("   ncalls") :].rstrip())  # drop pstats' preamble


async def run(url: str, args: argparse.Namespace) -> tuple[list[Result], dict[str, Any]]:
    settings = Settings(
        database_url=url, db_min_connections=args.pool_size, db_max_connections=args.pool_size
    )
    options = pool_options(settings)
    pools: dict[Contender, Pool] = {}
    try:
        for contender in CONTENDERS:
            pools[contender] = await asyncpg.create_pool(url, **options)
        info = await server_info(pools["raw"])
        log(
            f"PostgreSQL {info['server_version']} (fsync={info['fsync']}, "
            f"synchronous_commit={info['synchronous_commit']}); pools of {args.pool_size}, "
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
        return results, info
    finally:
        for pool in pools.values():
            await pool.close()


def table(results: list[Result]) -> str:
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
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def write_json(
    directory: Path,
    started: datetime,
    args: argparse.Namespace,
    server: dict[str, Any],
    results: list[Result],
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started:%Y%m%dT%H%M%SZ}.json"
    document = {
        "started_at": started.isoformat(),
        "quick": args.quick,
        "parameters": {
            **{name: getattr(args, name) for name in DEFAULTS},
            "synchronous_commit": args.synchronous_commit,
        },
        "server": server,
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "packages": {name: version(name) for name in ("asyncpg", "pydantic", "pydantic-core")},
        "median_of": "ops/s per contender over the rounds; ratio = Mnemo / raw",
        "results": [result.as_json() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    database_url = Settings().database_url
    log(
        "server: DATABASE_URL " + _server.describe(database_url)
        if database_url
        else "server: embedded PostgreSQL in a temporary directory"
    )
    parameters = {"synchronous_commit": args.synchronous_commit} if args.synchronous_commit else {}
    with (
        _server.server(database_url) as server_url,
        _server.fresh_database(server_url, parameters=parameters) as url,
    ):
        results, info = asyncio.run(run(url, args))
    server = {"where": "DATABASE_URL" if database_url else "embedded", **info}
    print()
    print(table(results))
    path = write_json(args.results_dir, started, args, server, results)
    print(f"\nresults: {path}")
    return 1 if args.fail_below and not all(r.passed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
