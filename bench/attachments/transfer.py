"""Files through Mnemo's HTTP API, beside raw asyncpg moving the same bytes (the ceiling).

A Mnemo server runs in a process of its own (``python -m bench.http.serve mnemo``, the uvicorn
stack ``make run`` serves), with ``APP_MAX_ATTACHMENT_BYTES`` raised to ``MAX_BYTES`` (or the
huge file's size) and the body and send deadlines to 10 minutes in its environment. The
client is httpx's AsyncClient over loopback, streaming both ways: the upload body comes from
an async generator of 1 MiB pieces (with a ``Content-Length``, as curl and browsers send it),
the download is read with ``aiter_bytes`` and only counted. Every upload is distinct content
(a random pool of bytes with a unique first 16 bytes), so none is deduplicated. The ceiling
is raw asyncpg on a connection of the same benchmark process: the same pieces cut into 1 MiB
chunks inserted into a scratch table (``data bytea`` with ``STORAGE EXTERNAL``) in one
transaction, and read back in keyset batches of 4 MiB; no HTTP, no hashing, no sniffing, no
permission check. Small files are moved ``SMALL_FILES_BYTES`` worth per turn (16 of 1 MiB),
one request each, so their rate includes each request's fixed cost.

Memory: the server process's RSS (with its children, if any) sampled every ``SAMPLE_SECONDS``
by a thread of the benchmark process; idle is the median over half a second before a transfer
(the server warmed up by the rounds before), peak the highest sample during it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from uuid import UUID

import asyncpg
import httpx
import psutil

from bench._report import log, table
from bench.attachments import thumbnails
from tests.support import free_port

MiB = 1024 * 1024
PIECE = MiB  # the client's body pieces, and the ceiling's chunks
READ_BATCH = 4 * MiB  # bytes a keyset batch of the ceiling reads back
MAX_BYTES = 2 * 1024 * MiB  # APP_MAX_ATTACHMENT_BYTES of the server under test
SMALL_FILES_BYTES = 16 * MiB  # a turn on a small file moves this many bytes of such files
SAMPLE_SECONDS = 0.02
RANGE_LENGTH = 64 * 1024
COUNTS_PATH = "/__bench__/counts"  # answered by bench/http/serve.py before the app

TARGET_DOWNLOAD_MB_S = 100.0
TARGET_UPLOAD_MB_S = 50.0
TARGET_PEAK_MIB = 64.0

Contender = Literal["mnemo", "asyncpg"]
Direction = Literal["upload", "download"]
DIRECTIONS: tuple[Direction, ...] = ("upload", "download")
TARGETS: dict[Direction, float] = {"upload": TARGET_UPLOAD_MB_S, "download": TARGET_DOWNLOAD_MB_S}

CEILING_TABLE = "bench_ceiling_chunks"


# --- the server -------------------------------------------------------------------------


class Server:
    """Mnemo served by uvicorn in a process of its own, as the http suite serves it."""

    module = ("-m", "bench.http.serve", "mnemo")

    def __init__(self, url: str, pool_size: int, max_bytes: int = MAX_BYTES) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "APP_MAX_ATTACHMENT_BYTES": str(max_bytes),
            "APP_BODY_TIMEOUT": "600",
            "APP_SEND_TIMEOUT": "600",
        }
        command = [sys.executable, *self.module, "--port", str(self.port)]
        command += ["--database-url", url, "--pool-size", str(pool_size)]
        self.process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], env=env)
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.base + COUNTS_PATH, timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Mnemo server did not start") from None
                time.sleep(0.2)

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def cpu(self) -> float:
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Sampler:
    """The server's RSS every SAMPLE_SECONDS while the block runs, on a thread."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.server.rss())
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.server.rss())


def idle_rss(server: Server) -> int:
    samples = []
    for _ in range(25):
        samples.append(server.rss())
        time.sleep(SAMPLE_SECONDS)
    return int(statistics.median(samples))


# --- content ------------------------------------------------------------------------------


class Content:
    """Distinct files cut from one pool of random bytes: file ``i`` of ``size`` bytes is the
    pool repeated, its first 16 bytes replaced by a unique prefix."""

    def __init__(self, pool_bytes: int) -> None:
        self.pool = memoryview(os.urandom(pool_bytes))
        self.made = 0

    def new(self, size: int) -> File:
        self.made += 1
        prefix = f"mnemo-bench{self.made:05}".encode()[:16].ljust(16, b"-")
        return File(self, size, prefix)


@dataclass(frozen=True)
class File:
    content: Content
    size: int
    prefix: bytes

    def pieces(self) -> Iterator[memoryview | bytes]:
        pool = self.content.pool
        offset = 0
        while offset < self.size:
            start = offset % len(pool)
            length = min(PIECE, self.size - offset, len(pool) - start)
            piece: memoryview | bytes = pool[start : start + length]
            if offset == 0:
                piece = self.prefix[:length] + bytes(piece[len(self.prefix) :])
            yield piece
            offset += length

    async def body(self) -> AsyncIterator[bytes]:
        for piece in self.pieces():
            yield bytes(piece) if isinstance(piece, memoryview) else piece

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.pieces():
            digest.update(piece)
        return digest.hexdigest()


# --- the two contenders -------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    secret: str
    user_id: UUID
    conversation_id: UUID


async def make_fixture(url: str) -> Fixture:
    from dal.database import pool_options
    from dal.gateways import conversations, users
    from dal.records.conversations import ConversationDraft
    from dal.records.users import UserDraft
    from dal.settings import Settings

    settings = Settings(database_url=url, db_min_connections=1, db_max_connections=2)
    async with asyncpg.create_pool(url, **pool_options(settings)) as pool:
        created = await users.create_user(pool, draft=UserDraft(username="bench-attachments"))
        conversation = await conversations.insert_conversation(
            pool, user_id=created.user.id, draft=ConversationDraft(title="files")
        )
        async with pool.acquire() as conn:
            await conn.execute(
                f"CREATE TABLE {CEILING_TABLE} (file_id int NOT NULL, n int NOT NULL,"
                " data bytea NOT NULL, PRIMARY KEY (file_id, n))"
            )
            await conn.execute(
                f"ALTER TABLE {CEILING_TABLE} ALTER COLUMN data SET STORAGE EXTERNAL"
            )
    return Fixture(created.token.secret, created.user.id, conversation.id)


class Upload(Protocol):
    @property
    def size(self) -> int: ...

    def body(self) -> AsyncIterator[bytes]: ...


class Mnemo:
    """The HTTP client side."""

    def __init__(self, server: Server, fixture: Fixture) -> None:
        self.server = server
        self.fixture = fixture
        self.client = httpx.AsyncClient(
            base_url=server.base,
            headers={"Authorization": f"Bearer {fixture.secret}"},
            timeout=httpx.Timeout(600.0),
        )

    async def upload(
        self, file: Upload, name: str = "x.bin", media_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        answer = await self.client.post(
            f"/v1/conversations/{self.fixture.conversation_id}/attachments",
            content=file.body(),
            headers={
                "Content-Type": media_type,
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Length": str(file.size),
            },
        )
        if answer.status_code != 201:
            raise RuntimeError(
                f"upload of {file.size} bytes: {answer.status_code} {answer.text[:300]}"
            )
        attachment: dict[str, Any] = answer.json()
        if attachment["size"] != file.size:
            raise RuntimeError(f"uploaded {file.size} bytes, the server says {attachment['size']}")
        return attachment

    async def put(self, file: Upload) -> str:
        attachment_id: str = (await self.upload(file))["id"]
        return attachment_id

    async def download(self, attachment_id: str, *, digest: Any = None) -> int:
        received = 0
        async with self.client.stream("GET", f"/v1/attachments/{attachment_id}") as answer:
            if answer.status_code != 200:
                await answer.aread()
                raise RuntimeError(f"download: {answer.status_code} {answer.text[:300]}")
            async for piece in answer.aiter_bytes():
                received += len(piece)
                if digest is not None:
                    digest.update(piece)
        return received

    async def range(self, attachment_id: str, start: int, length: int) -> bytes:
        answer = await self.client.get(
            f"/v1/attachments/{attachment_id}",
            headers={"Range": f"bytes={start}-{start + length - 1}"},
        )
        if answer.status_code != 206:
            raise RuntimeError(f"range download: {answer.status_code} {answer.text[:300]}")
        return answer.content

    async def aclose(self) -> None:
        await self.client.aclose()


class Ceiling:
    """Raw asyncpg: the same pieces into and out of a chunk table, nothing else."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.files = 0

    async def put(self, file: File) -> int:
        self.files += 1
        file_id = self.files
        insert = f"INSERT INTO {CEILING_TABLE} (file_id, n, data) VALUES ($1, $2, $3)"
        async with self.conn.transaction():
            for n, piece in enumerate(file.pieces()):
                await self.conn.execute(insert, file_id, n, piece)
        return file_id

    async def download(self, file_id: int) -> int:
        select = (
            f"SELECT n, data FROM {CEILING_TABLE} WHERE file_id = $1 AND n > $2 ORDER BY n LIMIT $3"
        )
        batch = READ_BATCH // PIECE
        received, last = 0, -1
        while True:
            rows = await self.conn.fetch(select, file_id, last, batch)
            received += sum(len(row[1]) for row in rows)
            if len(rows) < batch:
                return received
            last = rows[-1][0]

    async def empty(self) -> None:
        await self.conn.execute(f"TRUNCATE {CEILING_TABLE}")


# --- results ------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One file size: per round, seconds per file of each contender and direction."""

    size: int
    files: int
    seconds: dict[str, list[float]] = field(default_factory=dict)  # "mnemo upload": [...]
    server_cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU s / wall s
    client_cpu: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, seconds: float, server_cpu: float, client_cpu: float) -> None:
        self.seconds.setdefault(key, []).append(seconds / self.files)
        self.server_cpu.setdefault(key, []).append(server_cpu / seconds)
        self.client_cpu.setdefault(key, []).append(client_cpu / seconds)

    def mb_s(self, key: str) -> float:
        return self.size / statistics.median(self.seconds[key]) / 1e6

    def ratio(self, direction: Direction) -> float:
        return self.mb_s(f"mnemo {direction}") / self.mb_s(f"asyncpg {direction}")

    def passed(self, direction: Direction) -> bool:
        return self.mb_s(f"mnemo {direction}") >= TARGETS[direction]

    def as_json(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size,
            "files_per_turn": self.files,
            **{
                direction: {
                    "mnemo_mb_s": round(self.mb_s(f"mnemo {direction}"), 1),
                    "asyncpg_mb_s": round(self.mb_s(f"asyncpg {direction}"), 1),
                    "ratio": round(self.ratio(direction), 3),
                    "target_mb_s": TARGETS[direction],
                    "result": "PASS" if self.passed(direction) else "BELOW",
                    "server_cpu_share": round(
                        statistics.median(self.server_cpu[f"mnemo {direction}"]), 3
                    ),
                    "client_cpu_share": {
                        c: round(statistics.median(self.client_cpu[f"{c} {direction}"]), 3)
                        for c in ("mnemo", "asyncpg")
                    },
                    "rounds_seconds_per_file": {
                        c: [round(s, 4) for s in self.seconds[f"{c} {direction}"]]
                        for c in ("mnemo", "asyncpg")
                    },
                }
                for direction in DIRECTIONS
            },
        }


@dataclass
class Memory:
    direction: Direction
    size: int
    seconds: float
    idle: int
    peak: int
    samples: int

    @property
    def above_idle_mib(self) -> float:
        return (self.peak - self.idle) / MiB

    @property
    def passed(self) -> bool:
        return self.above_idle_mib < TARGET_PEAK_MIB

    def as_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "size_bytes": self.size,
            "mb_s": round(self.size / self.seconds / 1e6, 1),
            "idle_rss_bytes": self.idle,
            "peak_rss_bytes": self.peak,
            "peak_above_idle_mib": round(self.above_idle_mib, 1),
            "samples": self.samples,
            "target_mib": TARGET_PEAK_MIB,
            "result": "PASS" if self.passed else "BELOW",
        }


@dataclass
class Outcome:
    throughput: list[Throughput]
    memory: list[Memory]
    range_ms: float  # 64 KiB from the middle of the large file over HTTP, median
    thumbnail: thumbnails.Result


# --- the part of the suite ----------------------------------------------------------------


async def timed(server: Server, call: Any) -> tuple[float, float, float, Any]:
    """(wall seconds, server CPU seconds, this process's CPU seconds, the call's result)."""
    me = psutil.Process()
    cpu_server, cpu_me = server.cpu(), sum(me.cpu_times()[:2])
    start = time.perf_counter()
    result = await call()
    seconds = time.perf_counter() - start
    return seconds, server.cpu() - cpu_server, sum(me.cpu_times()[:2]) - cpu_me, result


async def turn(
    server: Server,
    result: Throughput,
    name: Contender,
    contender: Mnemo | Ceiling,
    batch: list[File],
) -> list[Any]:
    """One contender's turn: upload ``batch``, then download it; the ids of the files."""
    ids: list[Any] = []

    async def up() -> None:
        for file in batch:
            ids.append(await contender.put(file))

    async def down() -> None:
        for i in ids:
            if await contender.download(i) != result.size:
                raise RuntimeError(f"{name}: a download ended short")

    for direction, call in (("upload", up), ("download", down)):
        seconds, server_cpu, client_cpu, _ = await timed(server, call)
        result.add(f"{name} {direction}", seconds, server_cpu, client_cpu)
    return ids


async def measure_throughput(
    server: Server,
    mnemo: Mnemo,
    ceiling: Ceiling,
    content: Content,
    size: int,
    rounds: int,
) -> tuple[Throughput, str]:
    """Both contenders, both directions, ``rounds`` rounds after a checked warm-up; the id of
    the last file Mnemo stored."""
    files = max(1, SMALL_FILES_BYTES // size)
    result = Throughput(size, files)
    # Warm-up, checked: the hash the server computed and the bytes it serves back.
    file = content.new(size)
    attachment = await mnemo.upload(file)
    if attachment["sha256"] != file.sha256():
        raise RuntimeError("the server's sha256 of an upload is not the client's")
    digest = hashlib.sha256()
    await mnemo.download(attachment["id"], digest=digest)
    if digest.hexdigest() != attachment["sha256"]:
        raise RuntimeError("the downloaded bytes are not the uploaded ones")
    last = attachment["id"]
    for round_ in range(rounds):
        batch = [content.new(size) for _ in range(files)]
        order: tuple[Contender, ...] = (
            ("mnemo", "asyncpg") if round_ % 2 == 0 else ("asyncpg", "mnemo")
        )
        for name in order:
            ids = await turn(server, result, name, mnemo if name == "mnemo" else ceiling, batch)
            if name == "mnemo":
                last = ids[-1]
        await ceiling.empty()
        log(
            f"attachments http {_size(size)} round {round_ + 1}/{rounds}, MB/s up/down: "
            + "  ".join(
                f"{name} {size / result.seconds[f'{name} upload'][-1] / 1e6:.0f}"
                f"/{size / result.seconds[f'{name} download'][-1] / 1e6:.0f}"
                for name in ("mnemo", "asyncpg")
            )
        )
    return result, last


async def measure_memory(server: Server, mnemo: Mnemo, content: Content, size: int) -> list[Memory]:
    results = []
    file = content.new(size)
    await asyncio.sleep(1.0)
    idle = idle_rss(server)
    with Sampler(server) as sampler:
        start = time.perf_counter()
        attachment = await mnemo.upload(file)
        seconds = time.perf_counter() - start
    results.append(
        Memory("upload", size, seconds, idle, max(sampler.samples), len(sampler.samples))
    )
    log(
        f"attachments memory: {_size(size)} upload at {size / seconds / 1e6:.0f} MB/s, RSS idle"
        f" {idle / MiB:.1f} MiB, peak {max(sampler.samples) / MiB:.1f} MiB"
    )
    await asyncio.sleep(1.0)
    idle = idle_rss(server)
    with Sampler(server) as sampler:
        start = time.perf_counter()
        received = await mnemo.download(attachment["id"])
        seconds = time.perf_counter() - start
    if received != size:
        raise RuntimeError("the large download ended short")
    results.append(
        Memory("download", size, seconds, idle, max(sampler.samples), len(sampler.samples))
    )
    log(
        f"attachments memory: {_size(size)} download at {size / seconds / 1e6:.0f} MB/s, RSS idle"
        f" {idle / MiB:.1f} MiB, peak {max(sampler.samples) / MiB:.1f} MiB"
    )
    return results


async def measure_range(mnemo: Mnemo, attachment_id: str, size: int, reads: int) -> float:
    offset = size // 2 + 100_000
    seconds = []
    for _ in range(reads):
        start = time.perf_counter()
        piece = await mnemo.range(attachment_id, offset, RANGE_LENGTH)
        seconds.append(time.perf_counter() - start)
        if len(piece) != RANGE_LENGTH:
            raise RuntimeError(f"a range download answered {len(piece)} bytes")
    return statistics.median(seconds) * 1000


async def _run(server: Server, url: str, fixture: Fixture, args: argparse.Namespace) -> Outcome:
    sizes = (MiB, args.attachments_mib * MiB)
    content = Content(min(64 * MiB, args.attachments_mib * MiB))
    mnemo = Mnemo(server, fixture)
    conn = await asyncpg.connect(url)
    try:
        ceiling = Ceiling(conn)
        throughput = []
        last = ""
        for size in sizes:
            result, last = await measure_throughput(
                server, mnemo, ceiling, content, size, args.attachments_rounds
            )
            throughput.append(result)
        range_ms = await measure_range(mnemo, last, sizes[-1], args.attachments_range_reads)
        memory = await measure_memory(server, mnemo, content, args.attachments_huge_mib * MiB)
        thumbs = await thumbnails.measure(mnemo, args.attachments_thumbnails)
        return Outcome(throughput, memory, range_ms, thumbs)
    finally:
        await conn.close()
        await mnemo.aclose()


def run(url: str, args: argparse.Namespace) -> Outcome:
    fixture = asyncio.run(make_fixture(url))
    server = Server(url, args.pool_size, max(MAX_BYTES, args.attachments_huge_mib * MiB))
    try:
        return asyncio.run(_run(server, url, fixture, args))
    finally:
        server.stop()


def _size(size: int) -> str:
    return f"{size // MiB:,} MiB" if size >= MiB else f"{size // 1024} KiB"


def render(outcome: Outcome) -> str:
    rows = []
    for r in outcome.throughput:
        for direction in DIRECTIONS:
            rows.append(
                (
                    _size(r.size) if direction == "upload" else "",
                    direction,
                    f"{r.mb_s(f'mnemo {direction}'):,.0f}",
                    f"{r.mb_s(f'asyncpg {direction}'):,.0f}",
                    f"{r.ratio(direction):.2f}",
                    f"{statistics.median(r.server_cpu[f'mnemo {direction}']):.0%}",
                    f"{statistics.median(r.client_cpu[f'mnemo {direction}']):.0%}",
                    f">= {TARGETS[direction]:.0f} MB/s",
                    "PASS" if r.passed(direction) else "BELOW",
                )
            )
    text = table(
        (
            "file",
            "direction",
            "Mnemo HTTP MB/s",
            "raw asyncpg MB/s",
            "Mnemo / raw",
            "server CPU",
            "client CPU",
            "target",
            "result",
        ),
        rows,
    )
    text += (
        f"\n\n64 KiB range from the middle of the {_size(outcome.throughput[-1].size)} file over"
        f" HTTP (206): {outcome.range_ms:.2f} ms (median)"
    )
    memory_rows = [
        (
            f"{m.direction} of {_size(m.size)}",
            f"{m.size / m.seconds / 1e6:,.0f}",
            f"{m.idle / MiB:.1f} MiB",
            f"{m.peak / MiB:.1f} MiB",
            f"{m.above_idle_mib:.1f} MiB",
            f"< {TARGET_PEAK_MIB:.0f} MiB",
            "PASS" if m.passed else "BELOW",
        )
        for m in outcome.memory
    ]
    text += "\n\nthe server's memory (RSS, sampled every 20 ms):\n\n" + table(
        ("transfer", "MB/s", "idle", "peak", "peak - idle", "target", "result"), memory_rows
    )
    text += "\n\n" + thumbnails.render(outcome.thumbnail)
    return (
        text + "\n\nMB/s = 10^6 bytes/s; server / client CPU: CPU time of the server process /"
        " of the benchmark process over the transfer's wall time (100% = one core)"
    )


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "max_attachment_bytes": MAX_BYTES,
        "client": f"httpx {httpx.__version__} AsyncClient, {PIECE // MiB} MiB body pieces",
        "throughput": [r.as_json() for r in outcome.throughput],
        "range_64k_ms": round(outcome.range_ms, 3),
        "memory": [m.as_json() for m in outcome.memory],
        "thumbnails": thumbnails.as_json(outcome.thumbnail),
    }
