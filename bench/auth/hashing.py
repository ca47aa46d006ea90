"""Argon2id as a login pays for it: one verification of a password against its stored hash
(what ``POST /v1/auth/login`` does; it costs what hashing does), with argon2-cffi's
``PasswordHasher`` as the app uses it.

Per parameter set and round: the latency of one verification (one after the other on one
thread; wall time, and the process's CPU time, which is larger when the lanes of p > 1 run on
threads of their own), then the throughput of ``os.cpu_count()`` threads verifying at once.
The memory of one hash, and of ``os.cpu_count()`` at once, is the peak RSS (VmHWM, Linux) a
fresh process (``python -m bench.auth.hashing T M P THREADS``) gains while it hashes: argon2
touches every block of its ``m`` KiB, so it is resident, not just reserved.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

PASSWORD = "correct horse battery staple"
MIB = 1024


@dataclass(frozen=True)
class Parameters:
    name: str
    time_cost: int
    memory_kib: int
    parallelism: int
    heavy: bool = False  # a few verifications a round only

    @property
    def label(self) -> str:
        memory = self.memory_kib / MIB
        shown = f"{memory / 1024:g} GiB" if memory >= 1024 else f"{memory:g} MiB"
        return f"t={self.time_cost} m={shown} p={self.parallelism}"

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_kib, parallelism=self.parallelism
        )


# The alternatives the configured set is measured beside (RFC 9106 section 4; OWASP's Password
# Storage Cheat Sheet, whose options trade memory for passes at equal cost).
ALTERNATIVES = (
    Parameters("RFC 9106 second option (argon2-cffi's default)", 3, 64 * MIB, 4),
    Parameters("OWASP minimum", 2, 19 * MIB, 1),
    Parameters("OWASP, more memory", 1, 46 * MIB, 1),
    Parameters("RFC 9106 first option", 1, 2048 * MIB, 4, heavy=True),
)


@dataclass
class Result:
    parameters: Parameters
    configured: bool
    latency_ms: list[float] = field(default_factory=list)  # median of each round
    cpu_ms: list[float] = field(default_factory=list)  # CPU per verification, each round
    parallel_s: list[float] = field(default_factory=list)  # hashes/s, cpu_count threads
    memory_one: int = 0  # bytes of peak RSS gained by one hash
    memory_all: int = 0  # ... by cpu_count hashes at once

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values)

    @property
    def one_thread_s(self) -> float:
        return 1000 / self.median("latency_ms")

    def as_json(self) -> dict[str, Any]:
        p = self.parameters
        return {
            "name": p.name,
            "configured": self.configured,
            "time_cost": p.time_cost,
            "memory_kib": p.memory_kib,
            "parallelism": p.parallelism,
            "latency_ms": self.median("latency_ms"),
            "latency_ms_rounds": self.latency_ms,
            "cpu_ms_per_hash": self.median("cpu_ms"),
            "hashes_s_1_thread": self.one_thread_s,
            "hashes_s_all_threads": self.median("parallel_s"),
            "hashes_s_all_threads_rounds": self.parallel_s,
            "threads": os.cpu_count() or 1,
            "peak_rss_bytes_1_hash": self.memory_one,
            "peak_rss_bytes_all_threads": self.memory_all,
        }


def parameter_sets(configured: Parameters) -> list[tuple[Parameters, bool]]:
    """The configured set first, then each alternative that is not the same numbers."""
    same = (configured.time_cost, configured.memory_kib, configured.parallelism)
    sets = [(configured, True)]
    for alternative in ALTERNATIVES:
        if (alternative.time_cost, alternative.memory_kib, alternative.parallelism) == same:
            sets[0] = (Parameters(f"configured = {alternative.name}", *same), True)
        else:
            sets.append((alternative, False))
    return sets


def _latency(parameters: Parameters, count: int) -> tuple[float, float]:
    """(median wall ms, mean CPU ms) of ``count`` verifications one after the other."""
    hasher = parameters.hasher()
    stored = hasher.hash(PASSWORD)
    walls = []
    cpu_start = time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        hasher.verify(stored, PASSWORD)
        walls.append((time.perf_counter() - start) * 1000)
    cpu = (time.process_time() - cpu_start) * 1000 / count
    return statistics.median(walls), cpu


def _parallel(parameters: Parameters, count: int, threads: int) -> float:
    """Verifications per second with ``threads`` threads verifying ``count`` in all."""
    hasher = parameters.hasher()
    stored = hasher.hash(PASSWORD)
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: hasher.verify(stored, PASSWORD), range(count)))
        return count / (time.perf_counter() - start)


def peak_memory(parameters: Parameters, threads: int) -> int:
    """Bytes of peak RSS a fresh process gains while ``threads`` threads hash at once."""
    p = parameters
    command = [sys.executable, "-m", "bench.auth.hashing"]
    command += [str(p.time_cost), str(p.memory_kib), str(p.parallelism), str(threads)]
    out = subprocess.run(
        command,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    gained: int = json.loads(out)["gained_bytes"]
    return gained


def measure(configured: Parameters, rounds: int, hashes: int, log: Any) -> list[Result]:
    threads = os.cpu_count() or 1
    results = [Result(p, is_configured) for p, is_configured in parameter_sets(configured)]
    for result in results:
        result.memory_one = peak_memory(result.parameters, 1)
        result.memory_all = peak_memory(result.parameters, threads)
    for round_ in range(rounds):
        order = results if round_ % 2 == 0 else list(reversed(results))
        for result in order:
            count = max(2, hashes // 5) if result.parameters.heavy else hashes
            _latency(result.parameters, 1)  # warm-up
            wall, cpu = _latency(result.parameters, count)
            result.latency_ms.append(wall)
            result.cpu_ms.append(cpu)
            result.parallel_s.append(_parallel(result.parameters, count * threads, threads))
        log(
            f"auth: argon2 round {round_ + 1}/{rounds}: "
            + ", ".join(f"{r.parameters.label} {r.latency_ms[-1]:.0f} ms" for r in results)
        )
    return results


def main(argv: list[str]) -> None:
    """``T M P THREADS``: hash once per thread, all at once; print the peak RSS gained."""
    time_cost, memory_kib, parallelism, threads = (int(value) for value in argv)
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    before = _high_water_mark()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: hasher.hash(PASSWORD), range(threads)))
    print(json.dumps({"gained_bytes": _high_water_mark() - before}))


def _high_water_mark() -> int:
    """This process's peak RSS in bytes: VmHWM, which starts afresh at exec (getrusage's
    ru_maxrss keeps the peak of the process that forked it, the benchmark's own)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (the memory probe needs Linux)")


if __name__ == "__main__":
    main(sys.argv[1:])
