"""``python -m bench [messages] [checkpoints] [orm] [http] [search] [branches] [reads]
[attachments] [tasks] [events] [auth] [profiles] [retention]``:
Mnemo beside its competitors.

Suites (default: all, in this order):
  messages     Mnemo's gateways against raw asyncpg running the same SQL (bench/messages/)
  checkpoints  Mnemo's LangGraph AsyncpgSaver against langgraph-checkpoint-postgres's
               AsyncPostgresSaver, InMemorySaver as a reference (bench/checkpoints/)
  orm          Mnemo's gateways against SQLAlchemy's async ORM, SQLModel and Tortoise ORM
               on Mnemo's tables, raw asyncpg beside them (bench/orm/; the "bench" extra)
  http         Mnemo's HTTP API under wrk against the same routes in FastAPI + SQLModel and a
               bare Starlette + asyncpg ceiling, each served by uvicorn (bench/http/; needs wrk)
  search       Mnemo's message search and filters at 100,000 and 1,000,000 messages beside a
               plain content ILIKE; export/import throughput (bench/search/; its data sets
               are kept for the next run, under DATA_DIR/bench unless DATABASE_URL is set)
  branches     the newest page of the active branch of a 10,000-message conversation with 100
               branches beside the linear page; switches; old branches (bench/branches/)
  reads        a user's unread counts over 1,000 conversations (p95 target 10 ms) beside a
               plain one-conversation count (bench/reads/)
  attachments  chunked bytea against large objects (raw asyncpg); upload and download MB/s
               over HTTP beside raw asyncpg, the server's peak memory during a 1 GiB upload
               and download, a 12-megapixel JPEG's thumbnail (bench/attachments/)
  tasks        claim-and-complete throughput of Mnemo's queue against pgqueuer's, 1 and 8
               workers, exactly once checked (bench/tasks/; the "bench" extra)
  events       event append beside raw asyncpg, replay of 10,000 events, SSE fan-out of one
               event to 200 subscribers (bench/events/)
  auth         Argon2id verifications with the configured parameters beside alternatives
               (latency, per second on 1 and on every core, memory); logins/s over HTTP; a
               JWT-authenticated request beside an API-token one, statements per request
               (bench/auth/)
  profiles     resolve() of an LLM profile through the Resolver's in-process cache, without
               it, and raw asyncpg fetching the same row, in µs (bench/profiles/)
  retention    delete throughput of the retention runs (thread TTL, keep-N) on 1,000,000
               checkpoints while an agent workload runs, and that workload's p99 before and
               during them (bench/retention/)

Everything runs on one server (DATABASE_URL's, or a throw-away embedded PostgreSQL), each
suite's contenders in fresh databases of their own, dropped afterwards. Within each round the
contenders take turns, so the drift of a noisy machine hits them alike; the tables show medians
over the rounds, and the JSON lands in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import (
    _server,
    attachments,
    auth,
    branches,
    checkpoints,
    events,
    http,
    messages,
    orm,
    profiles,
    reads,
    retention,
    search,
    tasks,
)
from bench._report import log
from dal.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUITES = (
    "messages",
    "checkpoints",
    "orm",
    "http",
    "search",
    "branches",
    "reads",
    "attachments",
    "tasks",
    "events",
    "auth",
    "profiles",
    "retention",
)

# name: (full run, --quick, help); each can be overridden on the command line.
SHARED: dict[str, tuple[int, int, str]] = {
    "rounds": (5, 3, "measured rounds per workload (the tables show medians)"),
    "pool_size": (10, 10, "connections in each contender's pool (min = max)"),
}
GROUPS: dict[str, dict[str, tuple[int, int, str]]] = {
    "all suites": SHARED,
    "messages": messages.DEFAULTS,
    "checkpoints": checkpoints.DEFAULTS,
    "orm": orm.DEFAULTS,
    "http": http.DEFAULTS,
    "search": search.DEFAULTS,
    "branches": branches.DEFAULTS,
    "reads": reads.DEFAULTS,
    "attachments": attachments.DEFAULTS,
    "tasks": tasks.DEFAULTS,
    "events": events.DEFAULTS,
    "auth": auth.DEFAULTS,
    "profiles": profiles.DEFAULTS,
    "retention": retention.DEFAULTS,
}
PACKAGES = (
    "asyncpg",
    "pydantic",
    "pydantic-core",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "psycopg-pool",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="messages, checkpoints, orm, http, search, branches, reads, attachments,\n"
        "tasks, events, auth, profiles, retention (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")
    for group_name, defaults in GROUPS.items():
        group = parser.add_argument_group(f"counts ({group_name})")
        for name, (full, quick, text) in defaults.items():
            group.add_argument(
                "--" + name.replace("_", "-"),
                type=int,
                default=None,
                metavar="N",
                help=f"{text}; default {full} ({quick} with --quick)",
            )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after measuring, cProfile the contenders and print the hot spots",
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default=None,
        help="set it for the benchmark databases (default: the server's own setting);\n"
        "off takes the WAL flush of each commit out of the measurement",
    )
    parser.add_argument(
        "--fail-below", action="store_true", help="exit 1 when a ratio is below its target"
    )
    parser.add_argument(
        "--search-rebuild",
        action="store_true",
        help="generate the search data sets again even if a finished one is kept",
    )
    parser.add_argument(
        "--search-keep",
        action="store_true",
        help="with DATABASE_URL, keep the search data sets on its server for the next run",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, metavar="DIR")
    args = parser.parse_args(argv)
    unknown = [suite for suite in args.suites if suite not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}: choose from {', '.join(SUITES)}")
    named = bool(args.suites)
    args.suites = [suite for suite in SUITES if suite in args.suites] or list(SUITES)
    if "http" in args.suites and shutil.which("wrk") is None:
        if named:
            parser.error("the http suite needs wrk (apt-get install wrk), or name the other suites")
        # `make bench` on a machine without wrk still runs every other suite.
        print("skipping the http suite: it needs wrk (apt-get install wrk)", file=sys.stderr)
        args.suites.remove("http")
    for defaults in GROUPS.values():
        for name, (full, quick, _) in defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, quick if args.quick else full)
            if getattr(args, name) < (0 if name.endswith("warmup") else 1):
                parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def write_json(
    directory: Path, started: datetime, args: argparse.Namespace, document: dict[str, Any]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started:%Y%m%dT%H%M%SZ}.json"
    head = {
        "started_at": started.isoformat(),
        "quick": args.quick,
        "suites": args.suites,
        "parameters": {
            **{name: getattr(args, name) for group in GROUPS.values() for name in group},
            "synchronous_commit": args.synchronous_commit,
        },
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "packages": {
            name: version(name)
            for name in PACKAGES
            + (orm.PACKAGES if "orm" in args.suites else ())
            + (http.PACKAGES if "http" in args.suites else ())
            + (attachments.PACKAGES if "attachments" in args.suites else ())
            + (tasks.PACKAGES if "tasks" in args.suites else ())
            + (events.PACKAGES if "events" in args.suites else ())
            + (auth.PACKAGES if "auth" in args.suites else ())
        },
    }
    path.write_text(json.dumps({**head, **document}, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    database_url = Settings().database_url
    # The search suite keeps its data sets on a server of its own (bench/search/store.py).
    others = [suite for suite in args.suites if suite != "search"]
    log(
        "server: DATABASE_URL " + _server.describe(database_url)
        if database_url
        else "server: embedded PostgreSQL in a temporary directory"
        if others
        else "server: the search suite's own embedded PostgreSQL"
    )
    parameters = {"synchronous_commit": args.synchronous_commit} if args.synchronous_commit else {}
    document: dict[str, Any] = {}
    tables: list[str] = []
    passed = True
    with _server.server(database_url) if others else nullcontext("") as server_url:
        if "messages" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                document["server"] = server(url, database_url)
                results = asyncio.run(messages.run(url, args))
            tables.append("messages: Mnemo's gateways / raw asyncpg\n\n" + messages.render(results))
            document["messages"] = messages.as_json(results)
            passed = passed and all(r.passed for r in results)
        if "checkpoints" in args.suites:
            with (
                _server.fresh_database(server_url, parameters=parameters) as mnemo_url,
                _server.fresh_database(
                    server_url, parameters=parameters, migrated=False
                ) as official_url,
            ):
                urls: dict[checkpoints.Contender, str] = {
                    "official": official_url,
                    "mnemo": mnemo_url,
                }
                if "server" not in document:
                    document["server"] = server(mnemo_url, database_url)
                names = {c: _server.database_name(url) for c, url in urls.items()}
                outcome = asyncio.run(checkpoints.run(urls, server_url, names, args))
            tables.append(
                "checkpoints: Mnemo's AsyncpgSaver / LangGraph's AsyncPostgresSaver\n\n"
                + checkpoints.render(outcome)
            )
            document["checkpoints"] = checkpoints.as_json(outcome)
            passed = passed and all(r.passed is not False for r in outcome.results)
        if "orm" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                orm_results = asyncio.run(orm.run(url, args))
            tables.append(
                "orm: Mnemo's gateways / the ORMs, on Mnemo's tables\n\n" + orm.render(orm_results)
            )
            document["orm"] = orm.as_json(orm_results)
            passed = passed and all(r.passed for r in orm_results)
        if "http" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                http_outcome = http.run(url, args)
            tables.append(
                "http: Mnemo's API / the same routes in FastAPI + SQLModel / a bare Starlette + "
                "asyncpg ceiling\n\n" + http.render(http_outcome)
            )
            document["http"] = http.as_json(http_outcome)
            passed = passed and all(r.all_passed for r in http_outcome.results)
        if "branches" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                branches_outcome = asyncio.run(branches.run(url, args))
            tables.append(
                "branches: the active branch of a deep conversation with many branches / the "
                "same read of a linear one\n\n" + branches.render(branches_outcome)
            )
            document["branches"] = branches.as_json(branches_outcome)
            passed = passed and branches_outcome.passed
        if "reads" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                reads_results = asyncio.run(reads.run(url, args))
            tables.append(
                "reads: unread counts over all of a user's conversations / a plain count of one "
                "conversation's unread messages\n\n" + reads.render(reads_results)
            )
            document["reads"] = reads.as_json(reads_results)
            passed = passed and all(r.passed for r in reads_results)
        if "attachments" in args.suites:
            with (
                _server.fresh_database(
                    server_url, parameters=parameters, migrated=False
                ) as scratch_url,
                _server.fresh_database(server_url, parameters=parameters) as url,
            ):
                if "server" not in document:
                    document["server"] = server(url, database_url)
                attachments_outcome = attachments.run(scratch_url, url, args)
            tables.append(
                "attachments: where the bytes go, and files through the HTTP API\n\n"
                + attachments.render(attachments_outcome)
            )
            document["attachments"] = attachments.as_json(attachments_outcome)
            passed = passed and attachments_outcome.passed
        if "tasks" in args.suites:
            with (
                _server.fresh_database(server_url, parameters=parameters) as url,
                _server.fresh_database(
                    server_url, parameters=parameters, migrated=False
                ) as pgqueuer_url,
            ):
                if "server" not in document:
                    document["server"] = server(url, database_url)
                tasks_results = asyncio.run(tasks.run(url, pgqueuer_url, args))
            tables.append(
                "tasks: claim-and-complete throughput, Mnemo's queue / pgqueuer, exactly once\n\n"
                + tasks.render(tasks_results)
            )
            document["tasks"] = tasks.as_json(tasks_results)
            passed = passed and all(r.passed for r in tasks_results)
        if "events" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                events_outcome = events.run(url, args)
            tables.append(
                "events: event logs, Mnemo / raw asyncpg (the same statement); SSE fan-out\n\n"
                + events.render(events_outcome)
            )
            document["events"] = events.as_json(events_outcome)
            passed = passed and events_outcome.passed
        if "auth" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                auth_outcome = auth.run(url, args)
            tables.append(
                "auth: Argon2id password verification; logins over HTTP; a JWT beside an API "
                "token\n\n" + auth.render(auth_outcome)
            )
            document["auth"] = auth.as_json(auth_outcome)
            passed = passed and auth_outcome.passed
        if "profiles" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                profiles_result = asyncio.run(profiles.run(url, args))
            tables.append(
                "profiles: resolve() cached / uncached / raw asyncpg fetching the same row\n\n"
                + profiles.render(profiles_result)
            )
            document["profiles"] = profiles.as_json(profiles_result)
        if "retention" in args.suites:
            with _server.fresh_database(server_url, parameters=parameters) as url:
                if "server" not in document:
                    document["server"] = server(url, database_url)
                retention_outcome = asyncio.run(retention.run(url, args))
            tables.append(
                "retention: checkpoints deleted by the retention runs while an agent workload "
                "runs; the workload's latencies before, during and after\n\n"
                + retention.render(retention_outcome)
            )
            document["retention"] = retention.as_json(retention_outcome)
            passed = passed and retention_outcome.passed
    if "search" in args.suites:
        search_outcome = search.run(database_url, args)
        document.setdefault("server", {"where": "DATABASE_URL" if database_url else "embedded"})
        tables.append(
            "search: Mnemo's message search and filters, first page of 20 within one user's "
            "data, beside content ILIKE\n\n" + search.render(search_outcome)
        )
        document["search"] = search.as_json(search_outcome)
        passed = passed and search_outcome.passed
    for text in tables:
        print()
        print(text)
    path = write_json(args.results_dir, started, args, document)
    print(f"\nresults: {path}")
    return 1 if args.fail_below and not passed else 0


def server(url: str, database_url: str | None) -> dict[str, str]:
    info = _server.server_info(url)
    log(
        f"PostgreSQL {info['server_version']} (fsync={info['fsync']}, "
        f"synchronous_commit={info['synchronous_commit']})"
    )
    return {"where": "DATABASE_URL" if database_url else "embedded", **info}


if __name__ == "__main__":
    sys.exit(main())
