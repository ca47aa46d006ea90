"""The profiles suite: what an LLM call costs to learn its settings, ``resolve`` through the
Resolver's in-process cache (dal.usecases.profiles, the listener connected) beside the same
resolve without it (one statement and the secret's decryption per call) and, as the baseline,
raw asyncpg fetching the same row (no mapping, no decryption).

Data: ``profiles_users`` users, each with an active ``llm`` profile holding an API key, and a
system profile. Each call resolves for a random one of them (the cache warm for all). Every
contender runs on the same pool of the suite's size; they take turns of ``slice`` calls within
a round. The table shows the median over rounds of each round's p50 and p95 in µs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bench._report import log, table
from dal.database import open_pool
from dal.gateways import profiles
from dal.ids import new_id
from dal.queries import Q
from dal.records.profiles import ProfileDraft
from dal.settings import Settings
from dal.usecases.profiles import Resolver
from dal.vault import Vault

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "profiles_users": (1000, 100, "users with an active llm profile"),
    "profiles_calls": (2000, 300, "resolves per contender per round"),
    "profiles_slice": (100, 50, "calls per turn: the contenders take turns within a round"),
}
CONTENDERS = ("cached", "uncached", "raw")
TITLES = {
    "cached": "Resolver.resolve (cached)",
    "uncached": "profiles.resolve (no cache)",
    "raw": "raw asyncpg fetchrow (same row)",
}


@dataclass
class Result:
    # per contender, per round: (p50, p95) in µs
    rounds: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {name: [] for name in CONTENDERS}
    )

    def median(self, contender: str, index: int) -> float:
        return statistics.median(r[index] for r in self.rounds[contender])

    def as_json(self) -> dict[str, Any]:
        return {
            name: {
                "title": TITLES[name],
                "p50_us": round(self.median(name, 0), 1),
                "p95_us": round(self.median(name, 1), 1),
                "p50_ratio_to_raw": round(self.median(name, 0) / self.median("raw", 0), 3),
            }
            for name in CONTENDERS
        } | {"rounds": self.rounds}


async def seed(pool: Any, vault: Vault, users: int) -> list[UUID]:
    ids = [new_id() for _ in range(users)]
    await pool.execute(
        "INSERT INTO users (id, username) SELECT u, 'u' || u FROM unnest($1::uuid[]) AS u", ids
    )
    for user_id in [*ids, None]:
        draft = ProfileDraft(
            kind="llm",
            name="main",
            settings={"provider": "openai", "model": "gpt-x", "temperature": 0.2},
            secrets={"api_key": "sk-bench-0123456789abcdef-a1b2"},
        )
        made = await profiles.insert_profile(pool, vault, user_id=user_id, draft=draft)
        await profiles.activate_profile(pool, user_id=user_id, profile_id=made.id)
    await pool.execute("VACUUM ANALYZE profiles")
    return ids


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


async def _time(call: Callable[[], Awaitable[Any]], n: int, into: list[float]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        await call()
        into.append(time.perf_counter() - start)


async def run(url: str, args: argparse.Namespace) -> Result:
    settings = Settings(
        database_url=url,
        db_min_connections=args.pool_size,
        db_max_connections=args.pool_size,
        app_profile_cache_seconds=3600.0,
        mnemo_encryption_key=SecretStr(Fernet.generate_key().decode()),
    )
    vault = Vault.from_settings(settings)
    pool: asyncpg.Pool[Any] = await open_pool(settings)
    try:
        log(f"profiles: seeding {args.profiles_users} users' profiles")
        ids = await seed(pool, vault, args.profiles_users)
        async with Resolver(settings, pool, vault).running() as resolver:
            async with asyncio.timeout(30):
                while not resolver.trusted:  # noqa: ASYNC110 (the listener's state)
                    await asyncio.sleep(0.01)
            rng = random.Random(7)
            sql = Q["get_active_profile"].sql

            async def cached() -> Any:
                return await resolver.resolve(kind="llm", user_id=rng.choice(ids))

            async def uncached() -> Any:
                user_id = rng.choice(ids)
                return await profiles.resolve(pool, vault, kind="llm", user_id=user_id)

            async def raw() -> Any:
                return await pool.fetchrow(sql, rng.choice(ids), "llm")

            calls = {"cached": cached, "uncached": uncached, "raw": raw}
            for user_id in ids:  # warm: every entry cached, statements prepared
                await resolver.resolve(kind="llm", user_id=user_id)
            for call in calls.values():
                for _ in range(50):
                    await call()
            result = Result()
            log("profiles: measuring")
            for round_no in range(args.rounds):
                samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
                gc.collect()
                done = 0
                while done < args.profiles_calls:
                    n = min(args.profiles_slice, args.profiles_calls - done)
                    order = list(CONTENDERS)
                    if (round_no + done) % 2:
                        order.reverse()
                    for name in order:
                        await _time(calls[name], n, samples[name])
                    done += n
                for name in CONTENDERS:
                    result.rounds[name].append((_p(samples[name], 0.5), _p(samples[name], 0.95)))
            assert len(resolver) == len(ids), "entries were dropped while measuring"
            return result
    finally:
        await pool.close()


def render(result: Result) -> str:
    rows = [
        [
            TITLES[name],
            f"{result.median(name, 0):,.1f} µs",
            f"{result.median(name, 1):,.1f} µs",
            f"{result.median(name, 0) / result.median('raw', 0):.3f}x",
        ]
        for name in CONTENDERS
    ]
    return table(["resolve an llm profile", "p50", "p95", "p50 / raw"], rows)


def as_json(result: Result) -> dict[str, Any]:
    return result.as_json()
