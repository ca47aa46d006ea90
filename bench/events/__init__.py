"""The events suite: task and conversation event logs (issue 12).

1. Append (``logs.py``): Mnemo's gateways ``append_task_events`` (a worker's append) and
   ``append_conversation_events`` (a member's) against raw asyncpg running the same statement
   text with the same arguments: one event per append, one client and ``--events-clients``
   clients on logs of their own. Target: >= 0.9x raw.
2. Replay (``logs.py``, ``fanout.py``): a task's log of ``--events-log`` events read from the
   start in pages of ``--events-page``: the gateway ``list_task_events``, raw asyncpg running
   its statement, and ``GET /v1/tasks/{id}/events?after=&limit=`` from a Mnemo server process.
3. Fan-out (``fanout.py``): one event to ``--events-subscribers`` subscribers of ``GET
   /v1/tasks/{id}/events/stream``: the delivery latency, from the append's commit to each
   subscriber's socket, p50 and p95 over ``--events-fanouts`` events. Skipped, with a line
   saying so, while the route is not there.

The appends run before the server starts (its listener would otherwise take the NOTIFY of
every append on the machine's cores); the replays and the fan-out run against it. Within each
round the contenders take turns (the order alternating); the tables show medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from bench._report import log, table
from dal.database import pool_options
from dal.settings import Settings

if TYPE_CHECKING:  # imported when the suite runs: they need the event logs' gateways
    from bench.events import fanout, logs

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "events_appends": (2000, 300, "appends per contender per round and append workload"),
    "events_clients": (8, 8, "concurrent clients of the concurrent append workload"),
    "events_slice": (200, 50, "appends per turn: the contenders take turns within a round"),
    "events_log": (10000, 10000, "events in the replayed log"),
    "events_page": (1000, 1000, "events per page of the replay (the most a page holds)"),
    "events_replays": (10, 2, "replays per contender per round"),
    "events_subscribers": (200, 200, "SSE subscribers of the fan-out"),
    "events_fanouts": (50, 10, "events fanned out to every subscriber, one at a time"),
}
PACKAGES = ("httpx", "uvicorn", "starlette")


@dataclass
class Outcome:
    appends: list[logs.Result]
    replay: logs.Result
    fanout: fanout.Fanout
    log_events: int

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.appends)


async def _pools(url: str, size: int) -> dict[str, Any]:
    settings = Settings(database_url=url, db_min_connections=size, db_max_connections=size)
    options = pool_options(settings)
    return {c: await asyncpg.create_pool(url, **options) for c in ("raw", "mnemo")}


async def _close(pools: dict[str, Any]) -> None:
    for pool in pools.values():
        await pool.close()


async def _appends(url: str, args: argparse.Namespace) -> tuple[logs.Fixture, list[logs.Result]]:
    from bench.events import logs

    pools = await _pools(url, max(args.pool_size, args.events_clients))
    try:
        log(f"events: seeding a task log of {args.events_log:,} events")
        fixture = await logs.make_fixture(pools["mnemo"], args.events_log)
        return fixture, await logs.measure_appends(pools, fixture, args)
    finally:
        await _close(pools)


async def _served(
    url: str, server: Any, fixture: logs.Fixture, args: argparse.Namespace
) -> tuple[logs.Result, fanout.Fanout]:
    from bench.events import fanout

    pools = await _pools(url, args.pool_size)
    try:
        replay = await fanout.measure_replay(server.base, pools, fixture, args)
        spread = await fanout.measure_fanout(url, server.port, pools, fixture, args)
        return replay, spread
    finally:
        await _close(pools)


def run(url: str, args: argparse.Namespace) -> Outcome:
    """Everything on the migrated database at ``url``."""
    from bench.attachments.transfer import Server

    fixture, appends = asyncio.run(_appends(url, args))
    server = Server(url, args.pool_size)
    try:
        replay, spread = asyncio.run(_served(url, server, fixture, args))
    finally:
        server.stop()
    return Outcome(appends, replay, spread, args.events_log)


def render(outcome: Outcome) -> str:
    header = (
        "workload",
        "raw asyncpg",
        "Mnemo",
        "ratio",
        "rounds",
        "target",
        "result",
        "client CPU/append raw, Mnemo",
    )
    rows = [
        (
            r.title,
            f"{r.median('raw'):,.0f}/s",
            f"{r.median('mnemo'):,.0f}/s",
            f"{r.ratio:.3f}",
            f"{min(r.round_ratios):.2f}-{max(r.round_ratios):.2f}",
            f">= {r.target:.2f}" if r.target is not None else "",
            "PASS" if r.passed else "BELOW",
            f"{r.cpu('raw'):.0f}, {r.cpu('mnemo'):.0f} µs",
        )
        for r in outcome.appends
    ]
    text = "append, one event each\n\n" + table(header, rows)
    r = outcome.replay
    names = [name for name in ("raw", "mnemo", "http") if r.samples.get(name)]
    labels = {"raw": "raw asyncpg", "mnemo": "Mnemo gateway", "http": "Mnemo over HTTP"}
    text += f"\n\n{r.title}, ms per replay (events/s)\n\n" + table(
        ("", *(labels[n] for n in names), *(f"{labels[n]} / raw" for n in names[1:])),
        [
            (
                "replay",
                *(
                    f"{1000 / r.median(n):.1f} ms ({r.median(n) * outcome.log_events:,.0f}/s)"
                    for n in names
                ),
                *(f"{r.median(n) / r.median('raw'):.3f}" for n in names[1:]),
            )
        ],
    )
    f = outcome.fanout
    if f.skipped:
        text += f"\n\nSSE fan-out: skipped ({f.skipped})"
    else:
        text += (
            f"\n\nSSE fan-out: one event to {f.subscribers} subscribers, {f.fanouts} events\n\n"
            + table(
                ("from", "p50", "p95", "max", "missed"),
                [
                    (
                        "the append's commit to each subscriber",
                        f"{f.p(0.5):.1f} ms",
                        f"{f.p(0.95):.1f} ms",
                        f"{max(f.latencies):.1f} ms",
                        str(f.missed),
                    ),
                    (
                        "the append's start to each subscriber",
                        f"{f.p(0.5, 'latencies_from_start'):.1f} ms",
                        f"{f.p(0.95, 'latencies_from_start'):.1f} ms",
                        f"{max(f.latencies_from_start):.1f} ms",
                        "",
                    ),
                    (
                        "the append's start to a plain LISTEN (the NOTIFY)",
                        f"{f.p(0.5, 'notify_ms'):.1f} ms" if f.notify_ms else "-",
                        f"{f.p(0.95, 'notify_ms'):.1f} ms" if f.notify_ms else "-",
                        f"{max(f.notify_ms):.1f} ms" if f.notify_ms else "-",
                        "",
                    ),
                ],
            )
        )
    return text


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "median_of": "per contender over the rounds; ratio = Mnemo / raw asyncpg",
        "appends": [r.as_json() for r in outcome.appends],
        "replay": outcome.replay.as_json(),
        "fanout": outcome.fanout.as_json(),
        "passed": outcome.passed,
    }
