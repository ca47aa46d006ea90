"""The auth suite: what signing in with a password costs, and what a JWT costs beside an API
token (issue 13).

1. Argon2id (``hashing.py``): one verification of a password (what a login does), with the
   configured parameters (``APP_ARGON2_TIME_COST``, ``APP_ARGON2_MEMORY_KIB``,
   ``APP_ARGON2_PARALLELISM``) and with the alternatives of ``hashing.ALTERNATIVES``: its
   latency on one thread, verifications per second on one thread and on ``os.cpu_count()``
   threads, and the memory one hash (and ``os.cpu_count()`` at once) holds.
2. Login over HTTP (``served.py``): ``POST /v1/auth/login`` with valid credentials from
   ``--auth-login-clients`` concurrent clients against a Mnemo server process: logins/s, p50,
   p95, and the 503 busy answers of logins that waited too long for a hash slot.
3. JWT against API token (``served.py``): ``GET /v1/me`` with a user's access token and with
   the same user's API token from ``--auth-clients`` clients, taking turns within each round:
   requests/s, p50, p95, the server's CPU per request, and the statements the server sent to
   PostgreSQL per request in the steady state (counted in the server's driver,
   bench/http/serve.py), whose target is 0 for both.

Parts 2 and 3 are skipped, with a line saying so, where the app has no ``/v1/auth/login``.
Within each round the contenders take turns (the order alternating); tables show medians.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from bench._report import log, table
from bench.auth import hashing
from dal.settings import Settings

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "auth_hashes": (20, 5, "Argon2 verifications per parameter set per round (a fifth for 2 GiB)"),
    "auth_logins": (200, 40, "logins per round (all clients together)"),
    "auth_login_clients": (4, 4, "concurrent login clients"),
    "auth_clients": (8, 8, "concurrent clients of the JWT and API-token requests"),
    "auth_requests": (4000, 1000, "GET /v1/me requests per contender per round"),
}
PACKAGES = ("argon2-cffi", "argon2-cffi-bindings", "httpx", "uvicorn", "starlette")


@dataclass
class Outcome:
    argon2: list[hashing.Result]
    served: Any  # served.Outcome, or None when skipped
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return self.served is None or self.served.passed


def configured() -> hashing.Parameters:
    settings = Settings()
    return hashing.Parameters(
        "configured",
        settings.app_argon2_time_cost,
        settings.app_argon2_memory_kib,
        settings.app_argon2_parallelism,
    )


def has_login() -> bool:
    from app.routes import ENDPOINTS

    return any(e.path == "/v1/auth/login" for e in ENDPOINTS)


def run(url: str, args: argparse.Namespace) -> Outcome:
    """Argon2 in this process; then, on the migrated database at ``url``, a server's logins and
    its answers to JWT and API-token requests."""
    parameters = configured()
    log(f"auth: Argon2id, configured {parameters.label}, against {len(hashing.ALTERNATIVES)} more")
    argon2 = hashing.measure(parameters, args.rounds, args.auth_hashes, log)
    if not has_login():
        return Outcome(argon2, None, "the app has no POST /v1/auth/login")
    from bench.auth import served

    return Outcome(argon2, served.run(url, args))


def _size(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def render(outcome: Outcome) -> str:
    threads = os.cpu_count() or 1
    header = (
        "Argon2id",
        "parameters",
        "latency",
        "CPU/hash",
        "1 thread",
        f"{threads} threads",
        "memory, 1 hash",
        f"{threads} at once",
    )
    rows = [
        (
            ("* " if r.configured else "") + r.parameters.name,
            r.parameters.label,
            f"{r.median('latency_ms'):,.1f} ms",
            f"{r.median('cpu_ms'):,.1f} ms",
            f"{r.one_thread_s:,.1f}/s",
            f"{r.median('parallel_s'):,.1f}/s",
            _size(r.memory_one),
            _size(r.memory_all),
        )
        for r in outcome.argon2
    ]
    text = "one verification of a password (* the configured parameters)\n\n" + table(header, rows)
    if outcome.served is None:
        return text + f"\n\nlogin and JWT over HTTP: skipped ({outcome.skipped})"
    from bench.auth import served

    return text + "\n\n" + served.render(outcome.served)


def as_json(outcome: Outcome) -> dict[str, Any]:
    document: dict[str, Any] = {
        "median_of": "per parameter set / contender over the rounds",
        "argon2": [r.as_json() for r in outcome.argon2],
        "passed": outcome.passed,
    }
    if outcome.served is None:
        document["served"] = {"skipped": outcome.skipped}
    else:
        from bench.auth import served

        document["served"] = served.as_json(outcome.served)
    return document
