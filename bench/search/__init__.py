"""The search suite: Mnemo's message search and filters at 100,000 and 1,000,000 messages,
beside the plain ``content ILIKE '%term%'`` a data layer without a text index runs; export and
import throughput and the app's memory during a large export.

Data (``bench/search/dataset.py``): 100 users, 100 messages per conversation on average,
English and Chinese chat drawn from word lists by a Zipf-like law, tool calls (some failed),
reasoning, files and sources, metadata and tags; generated reproducibly, loaded with COPY into
a migrated database, VACUUM ANALYZEd, and kept for the next run (``bench/search/store.py``).

Timing (``bench/search/probes.py``): each probe is a kind of query asking for the first page
of 20 within one user's data; its queries vary the user and the term (a selective word holds
0.05-1% of that user's messages). Every query runs once untimed, then once timed, the scales
taking turns query by query (so the drift of a noisy machine hits both alike), on a pool built
from Mnemo's own pool options. The table shows p50 and p95 per scale, the growth of p95 from
the smaller scale to the larger, and for the text searches the same query as ILIKE (p50 over
fewer queries: it reads every message of the user). The same users and terms run at both
scales, except order numbers (random: each scale's own). Targets are for 1,000,000 messages.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from bench._report import log, table
from bench.search import dataset, probes, store, transfer
from dal.database import pool_options
from dal.settings import Settings

__all__ = ["DEFAULTS", "Outcome", "as_json", "render", "run"]

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "search_small": (100_000, 10_000, "messages of the smaller search data set"),
    "search_large": (1_000_000, 100_000, "messages of the larger one (targets are for 1,000,000)"),
    "search_queries": (100, 20, "timed queries per search probe and scale"),
    "search_baseline_queries": (20, 5, "timed queries of the ILIKE baseline per probe and scale"),
    "transfer_messages": (100_000, 10_000, "messages of the conversation exported and imported"),
}


def scale_of(messages: int) -> dataset.Scale:
    """100 users, 100 messages per conversation on average."""
    named = {s.messages: s for s in dataset.SCALES.values()}
    if messages in named:
        return named[messages]
    conversations = max(1, messages // 100)
    return dataset.Scale(f"{messages}", 100, conversations, messages)


@dataclass
class Timings:
    ms: list[float] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)  # share of the user's messages matched
    # queries whose page held fewer hits than the generator put in the user's messages
    short: list[str] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        if len(self.ms) == 1:
            return self.ms[0]
        return statistics.quantiles(self.ms, n=100, method="inclusive")[round(q * 100) - 1]

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    @property
    def p95(self) -> float:
        return self.quantile(0.95)

    def as_json(self) -> dict[str, Any]:
        return {
            "queries": len(self.ms),
            "p50_ms": round(self.p50, 3),
            "p95_ms": round(self.p95, 3),
            "max_ms": round(max(self.ms), 3),
            "items_median": statistics.median(self.items),
            "share_median": round(statistics.median(self.shares), 5) if self.shares else None,
            "short_pages": self.short,
        }


@dataclass
class Result:
    probe: probes.Probe
    small: str  # the scales' names
    large: str
    missing: str | None = None  # why it did not run
    mnemo: dict[str, Timings] = field(default_factory=dict)  # by scale name
    ilike: dict[str, Timings] = field(default_factory=dict)

    @property
    def growth(self) -> float | None:
        if self.small not in self.mnemo or self.large not in self.mnemo:
            return None
        return self.mnemo[self.large].p95 / self.mnemo[self.small].p95

    @property
    def verdict(self) -> str:
        """PASS, BELOW (what missed), "" without targets, or why it did not run."""
        if self.missing:
            return "not available yet" if "not available yet" in self.missing else "n/a"
        short = sum(len(t.short) for t in (*self.mnemo.values(), *self.ilike.values()))
        if short:
            return f"WRONG ({short} short pages)"
        misses = []
        target = self.probe.target_ms
        if target is not None and self.mnemo[self.large].p95 > target:
            misses.append("p95")
        growth, growth_target = self.growth, self.probe.growth_target
        if growth_target is not None and growth is not None and growth > growth_target:
            misses.append("growth")
        if target is None and growth_target is None:
            return ""
        return "BELOW (" + ", ".join(misses) + ")" if misses else "PASS"

    @property
    def passed(self) -> bool:
        return not self.verdict.startswith(("BELOW", "WRONG"))


@dataclass
class Outcome:
    scales: list[dataset.Scale]
    datasets: dict[str, dict[str, Any]]
    results: list[Result]
    explains: dict[str, str]
    server: dict[str, str]
    load: dict[str, list[float]]
    moved: transfer.Outcome  # export and import

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and self.moved.passed


async def _terms(pool: Any, kind: str) -> list[tuple[int, str]]:
    """(user, term) of a kind in the larger data set: selective words 0.05-1% of the user's
    messages (English stop words left out); all order numbers and common words."""
    low, high = dataset.SELECTIVE
    rows = await pool.fetch(
        """
        SELECT user_index, term FROM bench_search_terms
         WHERE kind = $1
           AND ($1 NOT IN ('word', 'cjk') OR matches::float8 / messages BETWEEN $2 AND $3)
           -- not a stop word ("again"): full-text search rightly finds nothing for it
           AND ($1 <> 'word' OR length(to_tsvector('english', term)) > 0)
         ORDER BY user_index, term
        """,
        kind,
        low,
        high,
    )
    return [(r["user_index"], r["term"]) for r in rows]


async def _counts(pool: Any, kind: str) -> dict[tuple[int, str], tuple[int, int]]:
    """(matches, messages) of each (user, term) of a kind, as the generator counted them."""
    rows = await pool.fetch(
        "SELECT user_index, term, matches, messages FROM bench_search_terms WHERE kind = $1",
        kind,
    )
    return {(r["user_index"], r["term"]): (r["matches"], r["messages"]) for r in rows}


async def _timed(run: probes.Run, pool: Any, user_id: UUID, term: str) -> tuple[float, int]:
    started = time.perf_counter()
    items = await run(pool, user_id, term)
    return (time.perf_counter() - started) * 1000, items


async def measure(
    probe: probes.Probe,
    run: probes.Run,
    pools: dict[str, Any],
    chosen: dict[str, list[probes.Query]],
    user_ids: dict[int, UUID],
    counts: dict[str, dict[tuple[int, str], tuple[int, int]]],
) -> dict[str, Timings]:
    """Each query once untimed, then once timed, the scales taking turns (``chosen``: the
    queries of each scale, as many for each)."""
    timings = {name: Timings() for name in pools}
    names = list(pools)
    n = min(len(queries) for queries in chosen.values())
    for i in range(n):
        for name in names:
            query = chosen[name][i]
            await run(pools[name], user_ids[query.user], query.term)
    gc.collect()
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            query = chosen[name][i]
            ms, items = await _timed(run, pools[name], user_ids[query.user], query.term)
            timings[name].ms.append(ms)
            timings[name].items.append(items)
            if probe.kind != "values":
                matches, messages = counts[name].get((query.user, query.term), (0, 1))
                timings[name].shares.append(matches / messages)
                # a text search finds at least what holds the word (stemming may add more)
                if probe.key in probes.EXACT and items < min(matches, probes.PAGE):
                    timings[name].short.append(f"user {query.user} {query.term!r}: {items}")
    return timings


async def measure_all(
    scales: list[dataset.Scale], urls: dict[str, str], args: argparse.Namespace
) -> tuple[list[Result], dict[str, str]]:
    why = probes.available()
    pools: dict[str, Any] = {}
    explains: dict[str, str] = {}
    try:
        for scale in scales:
            settings = Settings(
                database_url=urls[scale.name], db_min_connections=2, db_max_connections=2
            )
            pools[scale.name] = await asyncpg.create_pool(
                urls[scale.name], **pool_options(settings)
            )
        small, large = scales[0].name, scales[-1].name
        user_ids = {i: dataset.user_id(i) for i in range(scales[-1].users)}
        results = []
        for probe in probes.PROBES:
            result = Result(probe, small, large, missing=why[probe.needs])
            results.append(result)
            counts = {
                name: {} if probe.kind == "values" else await _counts(pool, probe.kind)
                for name, pool in pools.items()
            }
            # The same users and terms at every scale, so that the growth is the same query
            # on more data; but an order number is drawn at random: each scale its own.
            chosen: dict[str, list[probes.Query]] = {}
            for name, pool in pools.items():
                source = pool if probe.kind == "order" else pools[large]
                terms = [] if probe.kind == "values" else await _terms(source, probe.kind)
                chosen[name] = probes.queries(probe, terms, args.search_queries, scales[-1].users)
            if not all(chosen.values()):
                result.missing = f"no {probe.kind} terms in the data set"
                continue
            if probe.baseline:
                few = {
                    name: queries[: args.search_baseline_queries]
                    for name, queries in chosen.items()
                }
                result.ilike = await measure(probe, probes.ilike, pools, few, user_ids, counts)
                log(
                    f"search: {probe.title:<32} ILIKE p50 "
                    + "  ".join(f"{n} {t.p50:8.2f} ms" for n, t in result.ilike.items())
                )
            if result.missing:
                log(f"search: {probe.title:<32} {result.missing}")
                continue
            run = probes.RUNS[probe.key]
            result.mnemo = await measure(probe, run, pools, chosen, user_ids, counts)
            log(
                f"search: {probe.title:<32} Mnemo p50/p95 "
                + "  ".join(f"{n} {t.p50:6.2f}/{t.p95:6.2f} ms" for n, t in result.mnemo.items())
                + f"  {result.verdict}"
            )
            if probe.key == "broad" or result.verdict.startswith("BELOW"):
                # where the time goes: the slowest query of the larger scale, again
                times = result.mnemo[large].ms
                query = chosen[large][max(range(len(times)), key=times.__getitem__)]
                plan = await probes.explain(pools[large], run, user_ids[query.user], query.term)
                explains[probe.key] = (
                    f"{probe.title}: user {query.user}, term {query.term!r} "
                    f"({scales[-1].label})\n{plan}"
                )
        return results, explains
    finally:
        for pool in pools.values():
            await pool.close()


def run(database_url: str | None, args: argparse.Namespace) -> Outcome:
    scales = [scale_of(args.search_small), scale_of(args.search_large)]
    if scales[0].messages >= scales[1].messages:
        raise SystemExit("--search-small must be smaller than --search-large")
    cached = database_url is None or args.search_keep
    load_avg: dict[str, list[float]] = {}
    with store.server(database_url) as server_url:
        urls: dict[str, str] = {}
        datasets: dict[str, dict[str, Any]] = {}
        try:
            for scale in scales:
                urls[scale.name], datasets[scale.name] = asyncio.run(
                    store.ensure(server_url, scale, rebuild=args.search_rebuild, cached=cached)
                )
            from bench._server import server_info

            info = server_info(urls[scales[-1].name])
            load_avg["before"] = list(os.getloadavg())
            results, explains = asyncio.run(measure_all(scales, urls, args))
            load_avg["after"] = list(os.getloadavg())
            moved = transfer.run(server_url, args, cached=cached)
        finally:
            if not cached:
                for scale in scales:
                    store.drop(server_url, scale)
    return Outcome(scales, datasets, results, explains, info, load_avg, moved)


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def render(outcome: Outcome) -> str:
    small, large = outcome.scales[0], outcome.scales[-1]
    header = (
        "query",
        f"share ({large.name})",
        f"{small.name} p50",
        f"{small.name} p95",
        f"{large.name} p50",
        f"{large.name} p95",
        "growth p95",
        f"ILIKE {large.name} p50",
        "ILIKE ×",
        "target",
        "result",
    )
    rows = []
    for r in outcome.results:
        ilike = r.ilike.get(large.name)
        target = []
        if r.probe.target_ms is not None:
            target.append(f"p95 <= {r.probe.target_ms:g} ms")
        if r.probe.growth_target is not None:
            target.append(f"growth < {r.probe.growth_target:g}")
        if r.missing and not ilike:
            rows.append((r.probe.title, *[""] * 8, ", ".join(target), r.verdict))
            continue
        mnemo_small, mnemo_large = r.mnemo.get(small.name), r.mnemo.get(large.name)
        share = (mnemo_large or ilike) if (mnemo_large or ilike) else None
        growth = r.growth
        rows.append(
            (
                r.probe.title,
                f"{100 * statistics.median(share.shares):.2f}%" if share and share.shares else "",
                _ms(mnemo_small.p50) if mnemo_small else "",
                _ms(mnemo_small.p95) if mnemo_small else "",
                _ms(mnemo_large.p50) if mnemo_large else "",
                _ms(mnemo_large.p95) if mnemo_large else "",
                f"{growth:.2f}" if growth else "",
                _ms(ilike.p50) if ilike else "",
                _times(ilike.p50 / mnemo_large.p50) if ilike and mnemo_large else "",
                ", ".join(target),
                r.verdict,
            )
        )
    lines = [table(header, rows), ""]
    for scale in outcome.scales:
        info = outcome.datasets[scale.name]
        seconds = info.get("seconds", {})
        size = info.get("bytes", {}).get("db", 0) / 2**20
        how = "reused" if info.get("reused") else "built now"
        lines.append(
            f"{scale.name}: {scale.label}; database {size:,.0f} MiB; {how} "
            f"(built in {seconds.get('total_s', 0):.0f} s)"
        )
    load = " / ".join(
        f"{when} " + ", ".join(f"{x:.2f}" for x in values) for when, values in outcome.load.items()
    )
    lines.append(
        "ms per query, first page of 20, within one user's data; share: median share of the "
        f"user's messages holding the term; load average (1, 5, 15 min): {load}"
    )
    lines += ["", "export and import\n", transfer.render(outcome.moved)]
    for text in outcome.explains.values():
        lines += ["", "EXPLAIN (ANALYZE, BUFFERS) " + text]
    return "\n".join(lines)


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "unit": "ms per query (first page of 20, one user's data); growth = larger/smaller p95",
        "server": outcome.server,
        "datasets": outcome.datasets,
        "load_average": outcome.load,
        "results": [
            {
                "probe": r.probe.key,
                "title": r.probe.title,
                "missing": r.missing,
                "mnemo": {name: t.as_json() for name, t in r.mnemo.items()},
                "ilike": {name: t.as_json() for name, t in r.ilike.items()},
                "growth_p95": r.growth,
                "target_p95_ms": r.probe.target_ms,
                "growth_target": r.probe.growth_target,
                "result": "n/a" if r.missing else r.verdict,
            }
            for r in outcome.results
        ],
        "explain": outcome.explains,
        "transfer": transfer.as_json(outcome.moved),
    }
