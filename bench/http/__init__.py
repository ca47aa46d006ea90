"""The http suite: Mnemo's HTTP path measured from outside, beside the same routes in FastAPI +
SQLModel and a no-framework ceiling (bare Starlette, raw asyncpg, orjson).

Each contender is served by uvicorn in a process of its own (bench/http/serve.py: same uvicorn
settings for all), on one fresh database migrated with Mnemo's migrations; the load comes from
wrk in another process, over loopback, with a fixed number of connections for a fixed time.
Before timing, the three must answer the page and ``/v1/me`` with the same data. Every round
gives each contender one turn per workload (the order rotates between rounds), after a warm-up
turn each; the table shows medians over the rounds. Statements per request are counted in each
server process (serve.py says how); CPU per request is the server process's user + system CPU
time over the turn (psutil), divided by the requests it served.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import asyncpg
import orjson
import psutil

from bench._report import log, table
from dal.database import pool_options
from dal.gateways import conversations, messages, users
from dal.records.conversations import ConversationDraft
from dal.records.messages import MessageDraft
from dal.records.users import UserDraft
from dal.settings import Settings

Contender = Literal["mnemo", "fastapi", "ceiling"]
CONTENDERS: tuple[Contender, ...] = ("mnemo", "fastapi", "ceiling")
NAMES: dict[Contender, str] = {
    "mnemo": "Mnemo",
    "fastapi": "FastAPI+SQLModel",
    "ceiling": "Starlette+asyncpg",
}

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "http_seconds": (5, 2, "seconds of load per contender per workload per round"),
    "http_warmup": (2, 1, "seconds of warm-up load per contender and workload"),
    "http_connections": (32, 32, "wrk connections (one wrk thread)"),
    "http_conversations": (200, 50, "conversations the spread appends go round"),
}
PACKAGES = (
    "uvicorn",
    "starlette",
    "uvloop",
    "httptools",
    "h11",
    "fastapi",
    "sqlmodel",
    "sqlalchemy",
)
# The path each server answers its counts at (bench/http/serve.py; not imported here, so that
# ``python -m bench.http.serve`` does not find itself imported already).
COUNTS_PATH = "/__bench__/counts"
PAGE_MESSAGES = 300
PAGE_LIMIT = 50
APPEND_BODY = orjson.dumps(
    {
        "role": "user",
        "parts": [
            {
                "type": "text",
                "text": "Hi! Could you summarise what we said about the deployment plan yesterday?",
            }
        ],
    }
)


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    method: Literal["GET", "POST"]
    # Mnemo / contender targets: {contender: minimum ratio}
    targets: dict[Contender, float]


WORKLOADS = (
    Workload("page", f"GET page of {PAGE_LIMIT}", "GET", {"fastapi": 5.0, "ceiling": 0.8}),
    Workload("append_hot", "POST append, 1 conversation", "POST", {"fastapi": 6.0}),
    Workload("append_spread", "POST append, spread", "POST", {"fastapi": 6.0}),
    Workload("me", "GET /v1/me", "GET", {"fastapi": 6.0}),
)


@dataclass(frozen=True)
class Fixture:
    secret: str
    page_conversation: UUID
    hot_conversation: UUID
    spread_conversations: list[UUID]


@dataclass(frozen=True)
class Turn:
    requests_s: float
    p50_ms: float
    p99_ms: float
    statements: float  # per request
    cpu_ms: float  # per request
    errors: int  # non-2xx answers and socket errors


@dataclass
class Result:
    workload: Workload
    turns: dict[Contender, list[Turn]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )

    def median(self, contender: Contender, name: str) -> float:
        return statistics.median(getattr(turn, name) for turn in self.turns[contender])

    def ratio(self, contender: Contender) -> float:
        return self.median("mnemo", "requests_s") / self.median(contender, "requests_s")

    def passed(self, contender: Contender) -> bool:
        return self.ratio(contender) >= self.workload.targets[contender]

    @property
    def all_passed(self) -> bool:
        return all(self.passed(c) for c in self.workload.targets)

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload.key,
            "title": self.workload.title,
            "contenders": {
                c: {
                    "requests_s": round(self.median(c, "requests_s"), 1),
                    "p50_ms": round(self.median(c, "p50_ms"), 3),
                    "p99_ms": round(self.median(c, "p99_ms"), 3),
                    "statements_per_request": round(self.median(c, "statements"), 2),
                    "cpu_ms_per_request": round(self.median(c, "cpu_ms"), 3),
                    "errors": sum(t.errors for t in self.turns[c]),
                    "rounds_requests_s": [round(t.requests_s, 1) for t in self.turns[c]],
                }
                for c in CONTENDERS
            },
            "targets": {
                c: {
                    "ratio": round(self.ratio(c), 3),
                    "target": target,
                    "result": "PASS" if self.passed(c) else "BELOW",
                }
                for c, target in self.workload.targets.items()
            },
        }


@dataclass
class Outcome:
    results: list[Result]
    loop: str
    http: str
    load: dict[str, list[float]]


# --- fixture and servers ------------------------------------------------------------------


async def make_fixture(url: str, spread: int) -> Fixture:
    """A user and their token; a conversation of PAGE_MESSAGES messages to read; one to append
    to from every connection; ``spread`` more for appends that go round them."""
    settings = Settings(database_url=url, db_min_connections=1, db_max_connections=4)
    async with asyncpg.create_pool(url, **pool_options(settings)) as pool:
        created = await users.create_user(pool, draft=UserDraft(username="bench-http"))

        async def conversation() -> UUID:
            draft = ConversationDraft(title="bench")
            return (
                await conversations.insert_conversation(pool, user_id=created.user.id, draft=draft)
            ).id

        page = await conversation()
        for n in range(PAGE_MESSAGES):
            role: Literal["user", "assistant"] = "user" if n % 2 == 0 else "assistant"
            text = f"Message {n}: " + "a few words of a chat reply, " * (1 + n % 8)
            await messages.insert_message(
                pool,
                user_id=created.user.id,
                conversation_id=page,
                draft=MessageDraft(
                    role=role,
                    parts=[{"type": "text", "text": text}],
                    metadata={"model": "bench", "n": n} if n % 2 else {},
                ),
            )
        hot = await conversation()
        spread_ids = [await conversation() for _ in range(spread)]
    return Fixture(created.token.secret, page, hot, spread_ids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, contender: Contender, url: str, pool_size: int) -> None:
        self.contender = contender
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "bench.http.serve", contender, "--port", str(self.port)]
        command += ["--database-url", url, "--pool-size", str(pool_size)]
        self.process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2])
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.counts()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {contender} server did not start") from None
                time.sleep(0.2)

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.base + COUNTS_PATH, timeout=5) as answer:
            counts: dict[str, int] = orjson.loads(answer.read())
            return counts

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fetch(server: Server, path: str, secret: str) -> Any:
    request = urllib.request.Request(
        server.base + path, headers={"Authorization": f"Bearer {secret}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return orjson.loads(answer.read())


def _normal(value: Any) -> Any:
    """JSON values with timestamps and UUIDs compared by value, not by spelling."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
        try:
            return UUID(value)
        except ValueError:
            pass
    return value


def check_same_data(servers: dict[Contender, Server], fixture: Fixture) -> None:
    """Fail loudly unless every contender answers the page and /v1/me with the same data."""
    paths = {
        "page": f"/v1/conversations/{fixture.page_conversation}/messages?limit={PAGE_LIMIT}",
        "me": "/v1/me",
    }
    for what, path in paths.items():
        answers = {c: _normal(fetch(s, path, fixture.secret)) for c, s in servers.items()}
        if what == "page" and len(answers["mnemo"]["items"]) != PAGE_LIMIT:
            raise RuntimeError(f"Mnemo's page holds {len(answers['mnemo']['items'])} messages")
        for contender, answer in answers.items():
            if answer != answers["mnemo"]:
                raise RuntimeError(
                    f"{NAMES[contender]} answers {path} with other data than Mnemo: "
                    "the benchmark would compare different work"
                )
    log("http: the contenders answer the page and /v1/me with the same data")


# --- wrk ----------------------------------------------------------------------------------


def lua_script(workload: Workload, fixture: Fixture) -> str:
    lines = [f'wrk.headers["Authorization"] = "Bearer {fixture.secret}"']
    if workload.method == "POST":
        lines.append('wrk.method = "POST"')
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = [[{APPEND_BODY.decode()}]]")
    if workload.key == "append_spread":
        paths = ", ".join(f'"/v1/conversations/{c}/messages"' for c in fixture.spread_conversations)
        lines += [
            f"local paths = {{{paths}}}",
            "local n = 0",
            "request = function()",
            "  n = n + 1",
            "  return wrk.format(nil, paths[(n % #paths) + 1])",
            "end",
        ]
    return "\n".join(lines) + "\n"


def path_of(workload: Workload, fixture: Fixture) -> str:
    if workload.key == "page":
        return f"/v1/conversations/{fixture.page_conversation}/messages?limit={PAGE_LIMIT}"
    if workload.key == "append_hot":
        return f"/v1/conversations/{fixture.hot_conversation}/messages"
    if workload.key == "append_spread":
        return f"/v1/conversations/{fixture.spread_conversations[0]}/messages"
    return "/v1/me"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    server: Server,
    workload: Workload,
    fixture: Fixture,
    script: Path,
    seconds: int,
    connections: int,
) -> Turn:
    """One turn of load on ``server``; its numbers."""
    counts, cpu = server.counts(), server.cpu()
    # --timeout: a slow answer counts in the latencies, not as a socket error.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    command += ["-s", str(script)]
    out = subprocess.run(
        [*command, server.base + path_of(workload, fixture)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    time.sleep(0.3)  # the requests in flight when wrk stopped finish (and are counted)
    cpu_used, after = server.cpu() - cpu, server.counts()
    served = after["requests"] - counts["requests"]
    statements = after["statements"] - counts["statements"]
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if len(latency) != 2 or "Requests/sec:" not in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    requests_s = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Turn(
        requests_s=requests_s,
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        statements=statements / max(served, 1),
        cpu_ms=1000 * cpu_used / max(served, 1),
        errors=errors,
    )


# --- the suite ----------------------------------------------------------------------------


def run(url: str, args: argparse.Namespace) -> Outcome:
    """Measure every workload on the migrated database at ``url``."""
    if shutil.which("wrk") is None:
        raise RuntimeError("the http suite needs wrk (apt-get install wrk)")
    fixture = asyncio.run(make_fixture(url, args.http_conversations))
    from bench.http.serve import mnemo_config, stack

    loop, http = stack(mnemo_config(url, args.pool_size))
    log(
        f"http: uvicorn, one worker per contender, loop {loop}, http {http} "
        f"(Mnemo: app.server's protocol class); wrk 1 thread, {args.http_connections} "
        f"connections, {args.http_seconds} s turns, pools of {args.pool_size}"
    )
    servers: dict[Contender, Server] = {}
    load: dict[str, list[float]] = {"before": list(os.getloadavg())}
    try:
        for contender in CONTENDERS:
            servers[contender] = Server(contender, url, args.pool_size)
        check_same_data(servers, fixture)
        results: list[Result] = []
        with tempfile.TemporaryDirectory(prefix="mnemo-bench-http-") as tmp:
            for workload in WORKLOADS:
                script = Path(tmp) / f"{workload.key}.lua"
                script.write_text(lua_script(workload, fixture), encoding="utf-8")
                result = Result(workload)
                for contender in CONTENDERS:
                    wrk(
                        servers[contender],
                        workload,
                        fixture,
                        script,
                        args.http_warmup,
                        args.http_connections,
                    )
                for round_ in range(args.rounds):
                    order = CONTENDERS[round_ % 3 :] + CONTENDERS[: round_ % 3]
                    line = []
                    for contender in order:
                        turn = wrk(
                            servers[contender],
                            workload,
                            fixture,
                            script,
                            args.http_seconds,
                            args.http_connections,
                        )
                        result.turns[contender].append(turn)
                        line.append(f"{contender} {turn.requests_s:>7,.0f}")
                    log(
                        f"{workload.title:<30} round {round_ + 1}/{args.rounds}: "
                        + "  ".join(line)
                        + " req/s"
                    )
                results.append(result)
        load["after"] = list(os.getloadavg())
        return Outcome(results, loop, http, load)
    finally:
        for server in servers.values():
            server.stop()


def render(outcome: Outcome) -> str:
    header = (
        "workload",
        "contender",
        "req/s",
        "p50 ms",
        "p99 ms",
        "stmts/req",
        "CPU ms/req",
        "errors",
        "Mnemo ×",
        "target",
        "result",
    )
    rows = []
    for r in outcome.results:
        for c in CONTENDERS:
            target = r.workload.targets.get(c)
            rows.append(
                (
                    r.workload.title if c == "mnemo" else "",
                    NAMES[c],
                    f"{r.median(c, 'requests_s'):,.0f}",
                    f"{r.median(c, 'p50_ms'):.2f}",
                    f"{r.median(c, 'p99_ms'):.2f}",
                    f"{r.median(c, 'statements'):.2f}",
                    f"{r.median(c, 'cpu_ms'):.3f}",
                    str(sum(t.errors for t in r.turns[c])),
                    "" if c == "mnemo" else f"{r.ratio(c):.2f}",
                    f">= {target:g}" if target else "",
                    ("PASS" if r.passed(c) else "BELOW") if target else "",
                )
            )
    load = " / ".join(
        f"{when} " + ", ".join(f"{x:.2f}" for x in values) for when, values in outcome.load.items()
    )
    return (
        table(header, rows)
        + f"\n\nuvicorn: one worker each, loop {outcome.loop}, http {outcome.http}"
        + f"; load average (1, 5, 15 min): {load}"
    )


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "median_of": "per contender over the rounds; Mnemo × = Mnemo's req/s / the contender's",
        "uvicorn": {"loop": outcome.loop, "http": outcome.http, "workers": 1},
        "load_average": outcome.load,
        "results": [result.as_json() for result in outcome.results],
    }
