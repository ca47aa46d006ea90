"""Where a file's bytes go: chunked ``bytea`` rows against a large object, raw asyncpg on
scratch tables of an empty database (no Mnemo code involved).

Contenders, each writing and reading back the same file:

- ``bytea`` rows of 256 KiB or 1 MiB chunks, in a table ``(file_id, n, data)`` whose ``data``
  column has the default storage (EXTENDED: TOAST compresses a value with pglz when it can,
  then moves it out of line) or ``SET STORAGE EXTERNAL`` (out of line, never compressed).
  Written one ``INSERT`` per chunk, each its own transaction (autocommit), and again all in one
  transaction; read back in keyset batches (``n > $last ORDER BY n LIMIT k``, ``READ_BATCH``
  bytes a batch).
- a large object: ``lo_create``, ``lo_open``, ``lowrite`` of 1 MiB pieces, ``lo_close`` in one
  transaction (a large object descriptor lives only as long as its transaction); read back
  with ``loread`` of 1 MiB pieces in one transaction. Its "autocommit" write is ``lo_put`` of
  each 1 MiB piece in a transaction of its own (the closest to one INSERT per chunk).

Two kinds of content: random bytes (what most uploads are: JPEG, PNG, PDF, ZIP are already
compressed) and text (log lines: what pglz can shrink). The size on disk is what
``pg_total_relation_size`` of the chunk table (heap, TOAST, index) or of ``pg_largeobject``
(heap, index) grew by while the files were written in one transaction, into an emptied table
(``TRUNCATE``; for large objects ``lo_unlink`` and ``VACUUM FULL pg_largeobject``: what an
open snapshot elsewhere on the server still sees stays, compacted, and the new pages come
after it).

Before each timed write a ``CHECKPOINT`` (untimed; where the role may) writes out what the
turns before left dirty, so that no contender pays for another's pages.

Range reads, on the large file only: 64 KiB from its middle, as ``substring(data ...)`` of the
one chunk that holds it (one statement), and as ``lo_open`` + ``lo_lseek64`` + ``loread`` in a
transaction (BEGIN, three calls, COMMIT), and as ``lo_get(oid, offset, length)`` (one
statement).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from bench._report import log, table

MiB = 1024 * 1024
KiB = 1024
READ_BATCH = 4 * MiB  # bytes a keyset batch reads back
PIECE = MiB  # bytes of a lowrite / loread / lo_put
RANGE_LENGTH = 64 * KiB
SMALL_FILES_BYTES = 16 * MiB  # a turn on a small file writes this many bytes of such files
INV_WRITE, INV_READ = 0x20000, 0x40000

Kind = Literal["random", "text"]
KINDS: tuple[Kind, ...] = ("random", "text")


@dataclass(frozen=True)
class Contender:
    key: str
    title: str
    chunk: int  # 0: the large object
    storage: Literal["EXTENDED", "EXTERNAL", ""]

    @property
    def table(self) -> str:
        return f"chunks_{self.chunk // KiB}k_{self.storage.lower()}"


CONTENDERS = (
    Contender("bytea_256k_extended", "bytea 256 KiB, default (EXTENDED)", 256 * KiB, "EXTENDED"),
    Contender("bytea_256k_external", "bytea 256 KiB, STORAGE EXTERNAL", 256 * KiB, "EXTERNAL"),
    Contender("bytea_1m_extended", "bytea 1 MiB, default (EXTENDED)", MiB, "EXTENDED"),
    Contender("bytea_1m_external", "bytea 1 MiB, STORAGE EXTERNAL", MiB, "EXTERNAL"),
    Contender("large_object", "large object (1 MiB lowrite/loread)", 0, ""),
)


@dataclass
class Result:
    """One contender on one file size and kind of content; per round, seconds."""

    contender: Contender
    size: int
    kind: Kind
    files: int  # written and read per turn (small files: several, for a measurable time)
    write_autocommit: list[float] = field(default_factory=list)
    write_transaction: list[float] = field(default_factory=list)
    read: list[float] = field(default_factory=list)
    disk_bytes: int = 0
    # range reads, medians of each round's reads, seconds: {way: [per round]}
    ranges: dict[str, list[float]] = field(default_factory=dict)

    def mb_s(self, name: str) -> float:
        seconds: list[float] = getattr(self, name)
        return self.size / statistics.median(seconds) / 1e6

    def range_ms(self, way: str) -> float:
        return statistics.median(self.ranges[way]) * 1000

    def as_json(self) -> dict[str, Any]:
        return {
            "contender": self.contender.key,
            "title": self.contender.title,
            "size_bytes": self.size,
            "content": self.kind,
            "files_per_turn": self.files,
            "write_autocommit_mb_s": round(self.mb_s("write_autocommit"), 1),
            "write_transaction_mb_s": round(self.mb_s("write_transaction"), 1),
            "read_mb_s": round(self.mb_s("read"), 1),
            "disk_bytes": self.disk_bytes,
            "disk_ratio": round(self.disk_bytes / self.size, 3),
            "range_read_ms": {way: round(self.range_ms(way), 3) for way in self.ranges},
            "rounds_seconds": {
                "write_autocommit": [round(s, 4) for s in self.write_autocommit],
                "write_transaction": [round(s, 4) for s in self.write_transaction],
                "read": [round(s, 4) for s in self.read],
            },
        }


# --- content --------------------------------------------------------------------------------


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int) -> bytes:
    """Log lines (timestamps, ids, paths, numbers): pglz shrinks them to about a third."""
    rng = random.Random(seed)
    lines = []
    total = 0
    levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN")
    paths = ("messages", "attachments", "members", "reads", "search")
    block = 8 * MiB  # then repeated: every chunk still holds varied lines
    while total < min(size, block):
        line = (
            f"2026-12-06T{rng.randrange(24):02}:{rng.randrange(60):02}:{rng.randrange(60):02}."
            f"{rng.randrange(10**6):06}Z {rng.choice(levels)} worker-{rng.randrange(8)} "
            f"request={rng.getrandbits(64):016x} GET /v1/conversations/"
            f"{rng.getrandbits(128):032x}/{rng.choice(paths)} status=200 "
            f"ms={rng.random() * 40:.3f} bytes={rng.randrange(100, 90000)}\n"
        ).encode()
        lines.append(line)
        total += len(line)
    unit = b"".join(lines)
    return (unit * (size // len(unit) + 1))[:size]


def content(kind: Kind, size: int) -> bytes:
    return random_bytes(size, 11) if kind == "random" else text_bytes(size, 12)


# --- the contenders' operations ---------------------------------------------------------


async def setup(conn: Any) -> None:
    for c in CONTENDERS:
        if c.chunk:
            await conn.execute(
                f"CREATE TABLE {c.table} (file_id int NOT NULL, n int NOT NULL,"
                " data bytea NOT NULL, PRIMARY KEY (file_id, n))"
            )
            if c.storage == "EXTERNAL":
                await conn.execute(f"ALTER TABLE {c.table} ALTER COLUMN data SET STORAGE EXTERNAL")


async def empty(conn: Any, c: Contender) -> None:
    if c.chunk:
        await conn.execute(f"TRUNCATE {c.table}")
    else:
        await conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
        await conn.execute("VACUUM FULL pg_largeobject")


_checkpoints = [True]  # False once the server refused a CHECKPOINT (no privilege)


async def checkpoint(conn: Any) -> None:
    """Write out what earlier turns left dirty, so that no turn pays for another's (a
    superuser's or pg_checkpoint's right; skipped without it)."""
    if not _checkpoints[0]:
        return
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        _checkpoints[0] = False
        log("attachments storage: no right to CHECKPOINT; turns may pay for each other's writes")


async def disk_bytes(conn: Any, c: Contender) -> int:
    relation = c.table if c.chunk else "pg_largeobject"
    size: int = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", relation)
    return size


async def write(conn: Any, c: Contender, data: bytes, file_id: int, *, transaction: bool) -> int:
    """Write ``data`` as file ``file_id`` (a chunk table) or a new large object; the file's id
    (``file_id``, or the large object's oid)."""
    view = memoryview(data)
    if c.chunk:
        insert = f"INSERT INTO {c.table} (file_id, n, data) VALUES ($1, $2, $3)"
        if transaction:
            async with conn.transaction():
                for n, offset in enumerate(range(0, len(data), c.chunk)):
                    await conn.execute(insert, file_id, n, view[offset : offset + c.chunk])
        else:
            for n, offset in enumerate(range(0, len(data), c.chunk)):
                await conn.execute(insert, file_id, n, view[offset : offset + c.chunk])
        return file_id
    if transaction:
        async with conn.transaction():
            oid: int = await conn.fetchval("SELECT lo_create(0)")
            fd = await conn.fetchval("SELECT lo_open($1, $2)", oid, INV_WRITE)
            for offset in range(0, len(data), PIECE):
                await conn.fetchval("SELECT lowrite($1, $2)", fd, view[offset : offset + PIECE])
            await conn.fetchval("SELECT lo_close($1)", fd)
        return oid
    oid = await conn.fetchval("SELECT lo_create(0)")
    for offset in range(0, len(data), PIECE):
        await conn.execute("SELECT lo_put($1, $2, $3)", oid, offset, view[offset : offset + PIECE])
    return oid


async def read(conn: Any, c: Contender, oid: int) -> list[bytes]:
    """The bytes of file ``oid``, as the pieces read."""
    pieces: list[bytes] = []
    if c.chunk:
        batch = max(1, READ_BATCH // c.chunk)
        select = f"SELECT n, data FROM {c.table} WHERE file_id = $1 AND n > $2 ORDER BY n LIMIT $3"
        last = -1
        while True:
            rows = await conn.fetch(select, oid, last, batch)
            pieces.extend(row[1] for row in rows)
            if len(rows) < batch:
                return pieces
            last = rows[-1][0]
    async with conn.transaction():
        fd = await conn.fetchval("SELECT lo_open($1, $2)", oid, INV_READ)
        while True:
            piece: bytes = await conn.fetchval("SELECT loread($1, $2)", fd, PIECE)
            if piece:
                pieces.append(piece)
            if len(piece) < PIECE:
                break
        await conn.fetchval("SELECT lo_close($1)", fd)
    return pieces


async def range_read(conn: Any, c: Contender, oid: int, offset: int, way: str) -> bytes:
    if c.chunk:
        n, within = divmod(offset, c.chunk)
        piece: bytes = await conn.fetchval(
            f"SELECT substring(data FROM $3 FOR $4) FROM {c.table} WHERE file_id = $1 AND n = $2",
            oid,
            n,
            within + 1,
            RANGE_LENGTH,
        )
        return piece
    if way == "lo_get":
        piece = await conn.fetchval("SELECT lo_get($1, $2, $3)", oid, offset, RANGE_LENGTH)
        return piece
    async with conn.transaction():
        fd = await conn.fetchval("SELECT lo_open($1, $2)", oid, INV_READ)
        await conn.fetchval("SELECT lo_lseek64($1, $2, 0)", fd, offset)
        piece = await conn.fetchval("SELECT loread($1, $2)", fd, RANGE_LENGTH)
        await conn.fetchval("SELECT lo_close($1)", fd)
    return piece


def range_ways(c: Contender) -> tuple[str, ...]:
    return ("substring",) if c.chunk else ("lo_lseek64+loread", "lo_get")


# --- the part of the suite --------------------------------------------------------------


async def turn(
    conn: Any, c: Contender, data: bytes, result: Result, range_reads: int, check: bool
) -> None:
    """One contender's turn on one file size: write ``files`` files of ``data`` both ways,
    read them back (the times are per file), then the range reads."""
    files = result.files
    for transaction in (False, True):
        await empty(conn, c)
        await checkpoint(conn)
        before = await disk_bytes(conn, c)
        start = time.perf_counter()
        oids = [await write(conn, c, data, i, transaction=transaction) for i in range(files)]
        seconds = (time.perf_counter() - start) / files
        (result.write_transaction if transaction else result.write_autocommit).append(seconds)
    result.disk_bytes = (await disk_bytes(conn, c) - before) // files
    start = time.perf_counter()
    for oid in oids:
        pieces = await read(conn, c, oid)
    result.read.append((time.perf_counter() - start) / files)
    if check and b"".join(pieces) != data:
        raise RuntimeError(f"{c.title} read back other bytes than it wrote")
    del pieces
    oid = oids[0]
    if not range_reads:
        return
    offset = len(data) // 2 + 100_000  # inside one chunk of either size
    for way in range_ways(c):
        times = []
        for _ in range(range_reads):
            start = time.perf_counter()
            piece = await range_read(conn, c, oid, offset, way)
            times.append(time.perf_counter() - start)
        if piece != data[offset : offset + RANGE_LENGTH]:
            raise RuntimeError(f"{c.title}'s range read ({way}) returned other bytes")
        result.ranges.setdefault(way, []).append(statistics.median(times))


async def run(url: str, args: argparse.Namespace) -> list[Result]:
    sizes = (MiB, args.attachments_mib * MiB)
    rounds = args.attachments_rounds
    conn = await asyncpg.connect(url)
    try:
        await setup(conn)
        results: list[Result] = []
        for size in sizes:
            for kind in KINDS:
                data = content(kind, size)
                files = max(1, SMALL_FILES_BYTES // size)
                mine = {c.key: Result(c, size, kind, files) for c in CONTENDERS}
                for round_ in range(rounds):
                    shift = round_ % len(CONTENDERS)
                    order = CONTENDERS[shift:] + CONTENDERS[:shift]
                    for c in order:
                        await turn(
                            conn,
                            c,
                            data,
                            mine[c.key],
                            args.attachments_range_reads if size == sizes[-1] else 0,
                            check=round_ == 0,
                        )
                    log(
                        f"attachments storage {_size(size)} {kind} round {round_ + 1}/{rounds},"
                        " MB/s written in one transaction / read: "
                        + "  ".join(
                            f"{c.key} {size / mine[c.key].write_transaction[-1] / 1e6:.0f}"
                            f"/{size / mine[c.key].read[-1] / 1e6:.0f}"
                            for c in CONTENDERS
                        )
                    )
                for c in CONTENDERS:
                    await empty(conn, c)
                results.extend(mine.values())
        return results
    finally:
        await conn.close()


def _size(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // KiB} KiB"


def render(results: list[Result]) -> str:
    header = (
        "file",
        "storage",
        "write MB/s (autocommit)",
        "write MB/s (1 transaction)",
        "read MB/s",
        "on disk",
        "disk/size",
    )
    rows = []
    previous = None
    for r in results:
        group = f"{_size(r.size)} {r.kind}"
        rows.append(
            (
                group if group != previous else "",
                r.contender.title,
                f"{r.mb_s('write_autocommit'):,.0f}",
                f"{r.mb_s('write_transaction'):,.0f}",
                f"{r.mb_s('read'):,.0f}",
                f"{r.disk_bytes / MiB:,.1f} MiB",
                f"{r.disk_bytes / r.size:.2f}",
            )
        )
        previous = group
    text = table(header, rows)
    ranged = [r for r in results if r.ranges]
    if ranged:
        range_rows = []
        previous = None
        for r in ranged:
            group = f"{_size(r.size)} {r.kind}"
            for way in r.ranges:
                range_rows.append(
                    (
                        group if group != previous else "",
                        r.contender.title,
                        way,
                        f"{r.range_ms(way):.3f}",
                    )
                )
                previous = group
        text += (
            "\n\n64 KiB from the middle of the file (median of each round's reads):\n\n"
            + table(("file", "storage", "how", "ms"), range_rows)
        )
    return (
        text + "\n\nMB/s = 10^6 bytes/s; autocommit: one INSERT per chunk, each its own transaction"
        " (large object: lo_put per MiB); reads in keyset batches of "
        f"{READ_BATCH // MiB} MiB (large object: loread of 1 MiB in one transaction)"
    )


def as_json(results: list[Result]) -> dict[str, Any]:
    return {
        "read_batch_bytes": READ_BATCH,
        "piece_bytes": PIECE,
        "range_length": RANGE_LENGTH,
        "results": [r.as_json() for r in results],
    }
