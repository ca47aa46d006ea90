"""Logins, and a JWT beside an API token, against a Mnemo server process (bench/http/serve.py,
as the events and attachments suites serve it).

The load comes from clients in this process (``--auth-login-clients`` for the logins,
``--auth-clients`` for the rest), each with one keep-alive connection, all requests of a turn
in flight from them at once. Each answer must be 200, or for a login 503 busy (the server's
hash slots taken for longer than APP_HASH_WAIT_SECONDS: counted, not timed, not retried).
The logins go through httpx; ``GET /v1/me`` through a bare HTTP/1.1 client on asyncio streams
(``Connection``), whose cost per request is a fraction of the server's: with httpx the client
was the bottleneck and its own behaviour decided the ratio (it gave the JWT 1.8x the API
token's requests/s while the server spent more CPU on each JWT request).
The server counts the requests it answered and the statements it sent to PostgreSQL
(``/__bench__/counts``); the turn's statements over its requests are the round trips a request
costs. The listener of the server's token cache checks its connection every 2 s, so an idle
route shows a little above 0 (one statement per 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import httpx

from app.identity import password_hasher
from bench._report import log, table
from dal.database import pool_options
from dal.gateways import identity, users
from dal.records.users import UserDraft
from dal.settings import Settings

USERNAME = "bench-auth"
PASSWORD = "correct horse battery staple"  # noqa: S105 (the benchmark's own user)
ME = "/v1/me"
COUNTS_PATH = "/__bench__/counts"  # answered by bench/http/serve.py before the app
# A JWT request is free of round trips when it costs at most the listener's checks.
MAX_JWT_STATEMENTS = 0.05

Contender = Literal["jwt", "token"]
CONTENDERS: tuple[Contender, ...] = ("jwt", "token")
NAMES: dict[Contender, str] = {"jwt": "JWT (access token)", "token": "API token"}


@dataclass(frozen=True)
class Turn:
    requests_s: float
    p50_ms: float
    p95_ms: float
    statements: float  # per request
    cpu_us: float  # the server's CPU per request
    busy: int = 0  # 503 busy answers (logins waiting for a hash slot too long), not retried


@dataclass
class Outcome:
    clients: int
    login_clients: int
    logins: list[Turn] = field(default_factory=list)
    requests: dict[Contender, list[Turn]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )

    def median(self, turns: list[Turn], name: str) -> float:
        return statistics.median(getattr(turn, name) for turn in turns)

    @property
    def ratios(self) -> list[float]:
        """JWT requests/s over API-token requests/s, per round."""
        pairs = zip(self.requests["jwt"], self.requests["token"], strict=True)
        return [jwt.requests_s / token.requests_s for jwt, token in pairs]

    @property
    def passed(self) -> bool:
        return self.median(self.requests["jwt"], "statements") <= MAX_JWT_STATEMENTS

    def as_json(self) -> dict[str, Any]:
        def turns(values: list[Turn]) -> dict[str, Any]:
            names = ("requests_s", "p50_ms", "p95_ms", "statements", "cpu_us", "busy")
            return {
                **{name: self.median(values, name) for name in names},
                "rounds": [vars(turn) for turn in values],
            }

        return {
            "clients": self.clients,
            "login_clients": self.login_clients,
            "login": turns(self.logins),
            "me": {c: turns(self.requests[c]) for c in CONTENDERS},
            "ratio_jwt_over_token": statistics.median(self.ratios),
            "ratio_rounds": self.ratios,
            "max_jwt_statements": MAX_JWT_STATEMENTS,
            "passed": self.passed,
        }


async def make_user(url: str) -> str:
    """The benchmark's user, with PASSWORD as their password; returns their API token."""
    settings = Settings(database_url=url, db_min_connections=1, db_max_connections=2)
    password_hash = password_hasher(settings).hash(PASSWORD)
    async with asyncpg.create_pool(url, **pool_options(settings)) as pool:
        created = await users.create_user(pool, draft=UserDraft(username=USERNAME))
        await identity.set_password(
            pool,
            user_id=created.user.id,
            password_hash=password_hash,
            now=datetime.now(UTC),
            reason="password_set",
        )
    return created.token.secret


async def _counts(http: httpx.AsyncClient) -> dict[str, int]:
    answer = await http.get(COUNTS_PATH)
    answer.raise_for_status()
    counts: dict[str, int] = answer.json()
    return counts


class Connection:
    """One keep-alive HTTP/1.1 connection sending one GET, its answer read whole (by its
    Content-Length, which every answer of the route has)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 60)
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        body = await asyncio.wait_for(self.reader.readexactly(length), 60)
        return int(lines[0].split(" ", 2)[1]), body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def me_request(secret: str) -> bytes:
    return (
        f"GET {ME} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n\r\n"
    ).encode()


# A request on one client: the answer's status and body.
Send = Callable[[Any], Awaitable[tuple[int, bytes]]]


async def _turn(
    server: Any, http: httpx.AsyncClient, clients: list[Any], total: int, send: Send
) -> Turn:
    """``total`` requests made by ``send``, from every client at once, timed."""
    latencies: list[float] = []
    left = total
    busy = 0

    async def client(one: Any) -> None:
        nonlocal left, busy
        while left > 0:
            left -= 1
            start = time.perf_counter()
            status, body = await send(one)
            if status == 503 and b'"busy"' in body:
                busy += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise RuntimeError(f"answered {status}: {body[:300]!r}")

    before, cpu = await _counts(http), server.cpu()
    start = time.perf_counter()
    await asyncio.gather(*(client(one) for one in clients))
    wall = time.perf_counter() - start
    await asyncio.sleep(0.2)  # the last answers are counted once sent
    after, cpu = await _counts(http), server.cpu() - cpu
    requests = after["requests"] - before["requests"]  # the counts' own are not counted
    if len(latencies) < 2:
        raise RuntimeError(f"{busy} of {total} requests answered 503 busy")
    cuts = statistics.quantiles(latencies, n=20)
    return Turn(
        requests_s=len(latencies) / wall,
        p50_ms=statistics.median(latencies),
        p95_ms=cuts[18],
        statements=(after["statements"] - before["statements"]) / requests,
        cpu_us=cpu * 1e6 / requests,
        busy=busy,
    )


async def _measure(server: Any, api_token: str, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(args.auth_clients, args.auth_login_clients)
    credentials = {"username": USERNAME, "password": PASSWORD}

    async def login(http: httpx.AsyncClient) -> tuple[int, bytes]:
        answer = await http.post("/v1/auth/login", json=credentials)
        return answer.status_code, answer.content

    limits = httpx.Limits(max_connections=1)
    http = [
        httpx.AsyncClient(base_url=server.base, timeout=60, limits=limits)
        for _ in range(args.auth_login_clients)
    ]

    async def me(contender: Contender, total: int) -> Turn:
        # Connections of the turn's own: the server closes idle ones (its keep-alive timeout)
        # while the logins run. Opened before the clock starts.
        connections = [await Connection.open(server.port) for _ in range(args.auth_clients)]
        try:
            return await _turn(server, http[0], connections, total, sends[contender])
        finally:
            for connection in connections:
                await connection.close()

    try:
        first = await http[0].post("/v1/auth/login", json=credentials)
        first.raise_for_status()
        requests: dict[Contender, bytes] = {
            "jwt": me_request(first.json()["access_token"]),
            "token": me_request(api_token),
        }
        sends: dict[Contender, Send] = {
            c: (lambda one, request=requests[c]: one.get(request)) for c in CONTENDERS
        }
        # Warm-up: every connection open, both credentials in the server's cache.
        await _turn(server, http[0], http, args.auth_login_clients * 2, login)
        for contender in CONTENDERS:
            await me(contender, args.auth_requests // 4)
        for round_ in range(args.rounds):
            turn = await _turn(server, http[0], http, args.auth_logins, login)
            outcome.logins.append(turn)
            order = CONTENDERS if round_ % 2 == 0 else CONTENDERS[::-1]
            for contender in order:
                outcome.requests[contender].append(await me(contender, args.auth_requests))
            log(
                f"auth: round {round_ + 1}/{args.rounds}: {turn.requests_s:.1f} logins/s, "
                + ", ".join(
                    f"{c} {outcome.requests[c][-1].requests_s:,.0f} req/s "
                    f"({outcome.requests[c][-1].statements:.3f} statements)"
                    for c in CONTENDERS
                )
            )
    finally:
        for client in http:
            await client.aclose()
    return outcome


def run(url: str, args: argparse.Namespace) -> Outcome:
    from bench.attachments.transfer import Server

    api_token = asyncio.run(make_user(url))
    server = Server(url, args.pool_size)
    try:
        return asyncio.run(_measure(server, api_token, args))
    finally:
        server.stop()


def render(outcome: Outcome) -> str:
    header = ("", "clients", "per second", "p50", "p95", "statements", "server CPU", "busy")

    def row(title: str, clients: int, turns: list[Turn]) -> tuple[str, ...]:
        return (
            title,
            str(clients),
            f"{outcome.median(turns, 'requests_s'):,.1f}",
            f"{outcome.median(turns, 'p50_ms'):,.1f} ms",
            f"{outcome.median(turns, 'p95_ms'):,.1f} ms",
            f"{outcome.median(turns, 'statements'):.3f}",
            f"{outcome.median(turns, 'cpu_us'):,.0f} µs",
            str(sum(turn.busy for turn in turns)),
        )

    rows = [
        row("POST /v1/auth/login", outcome.login_clients, outcome.logins),
        *(row(f"GET {ME}, {NAMES[c]}", outcome.clients, outcome.requests[c]) for c in CONTENDERS),
    ]
    ratios = outcome.ratios
    jwt = outcome.median(outcome.requests["jwt"], "statements")
    return (
        "over HTTP; statements and server CPU per request; busy: 503s over all rounds\n\n"
        + table(header, rows)
        + f"\n\nJWT / API token, requests/s: {statistics.median(ratios):.3f} "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f}); JWT statements per request "
        f"{jwt:.3f} (target <= {MAX_JWT_STATEMENTS}: {'PASS' if outcome.passed else 'ABOVE'})"
    )


def as_json(outcome: Outcome) -> dict[str, Any]:
    return outcome.as_json()
