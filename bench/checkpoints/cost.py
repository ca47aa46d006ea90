"""What an invocation costs, counted rather than timed (noise-free, unlike times).

50 invocations on one-connection pools count, per invocation, the saver calls, the statements
each driver sends, the transactions PostgreSQL's statistics saw and the WAL the server wrote
meanwhile: what each save costs the server's disk (on a server of its own, as the embedded one
is; the WAL of every database of the server is counted).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.checkpoints.contenders import CONTENDERS, Contender, CountingCursor, open_sides
from bench.checkpoints.graph import Saver, invoke


@dataclass
class Work:
    """Per invocation, on average: saver calls, statements sent, transactions committed, WAL
    bytes written."""

    calls: dict[str, float]
    statements: float | None
    transactions: float | None
    wal_bytes: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "saver_calls": {k: round(v, 2) for k, v in self.calls.items()},
            "statements": None if self.statements is None else round(self.statements, 2),
            "transactions": None if self.transactions is None else round(self.transactions, 2),
            "wal_bytes": None if self.wal_bytes is None else round(self.wal_bytes),
        }


SAVER_METHODS = ("aget_tuple", "alist", "aput", "aput_writes")


def count_calls(saver: Saver, counter: Counter[str]) -> None:
    """Count the calls of the saver's async methods in ``counter`` (instance attributes
    shadowing the class's methods)."""
    for name in SAVER_METHODS:
        method = getattr(saver, name)
        if name == "alist":

            def wrapper_list(*a: Any, _m: Any = method, _n: str = name, **k: Any) -> Any:
                counter.update([_n])
                return _m(*a, **k)

            setattr(saver, name, wrapper_list)
        else:

            async def wrapper(*a: Any, _m: Any = method, _n: str = name, **k: Any) -> Any:
                counter.update([_n])
                return await _m(*a, **k)

            setattr(saver, name, wrapper)


def transactions(server_url: str, databases: Mapping[Contender, str]) -> dict[Contender, int]:
    """Transactions committed or rolled back in each database so far (cumulative statistics;
    a backend reports its own when it ends, so close the pools first)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = ANY(%s)",
            (list(databases.values()),),
        ).fetchall()
    by_name = {name: int(count) for name, count in rows}
    return {c: by_name.get(name, 0) for c, name in databases.items()}


def wal_position(server_url: str) -> int:
    """Where the server's write-ahead log is, in bytes: the difference of two readings is the
    WAL written between them (by every database of the server)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def settled_transactions(
    server_url: str, databases: Mapping[Contender, str]
) -> dict[Contender, int]:
    """``transactions``, once the ended backends have reported (the same twice running)."""
    last = await asyncio.to_thread(transactions, server_url, databases)
    for _ in range(25):
        await asyncio.sleep(0.2)
        now = await asyncio.to_thread(transactions, server_url, databases)
        if now == last:
            break
        last = now
    return last


async def count_work(
    urls: Mapping[Contender, str],
    server_url: str,
    databases: Mapping[Contender, str],
    *,
    invokes: int,
    threads: int,
) -> dict[Contender, Work]:
    """Run ``invokes`` invocations (on ``threads`` new threads) on a one-connection pool of its
    own per contender, after two to warm the connection up (statements prepared, types
    introspected), counting saver calls and statements client side, transactions in
    PostgreSQL's statistics, less those of the same pass without the ``invokes``, and the WAL
    written while a contender's invocations ran (the contenders run one after the other)."""

    async def one_pass(
        n: int,
    ) -> tuple[dict[Contender, Counter[str]], Counter[str], Counter[str]]:
        statements: Counter[str] = Counter()
        wal: Counter[str] = Counter()
        calls: dict[Contender, Counter[str]] = {c: Counter() for c in CONTENDERS}
        async with open_sides(urls, 1, count_statements=statements) as sides:
            for contender, side in sides.items():
                for _ in range(2):
                    await invoke(side.graph, f"count-{n}-warm")
                statements[contender] = CountingCursor.statements = 0
                count_calls(side.saver, calls[contender])
                start = await asyncio.to_thread(wal_position, server_url)
                for j in range(n):
                    await invoke(side.graph, f"count-{n}-t{j % threads}")
                wal[contender] = await asyncio.to_thread(wal_position, server_url) - start
                if contender == "official":
                    statements[contender] = CountingCursor.statements
        return calls, statements, wal

    before = await settled_transactions(server_url, databases)
    await one_pass(0)
    baseline = await settled_transactions(server_url, databases)
    calls, statements, wal = await one_pass(invokes)
    after = await settled_transactions(server_url, databases)
    work: dict[Contender, Work] = {}
    for contender in CONTENDERS:
        per_call = {m: calls[contender][m] / invokes for m in SAVER_METHODS}
        if contender == "memory":
            work[contender] = Work(per_call, None, None)
            continue
        overhead = baseline[contender] - before[contender]
        committed = after[contender] - baseline[contender] - overhead
        work[contender] = Work(
            per_call,
            statements[contender] / invokes,
            committed / invokes,
            wal[contender] / invokes,
        )
    return work
