"""The attachments suite: where a file's bytes are kept, and files through Mnemo's HTTP API.

1. Storage (``storage.py``): chunked ``bytea`` rows (256 KiB and 1 MiB chunks, default or
   ``STORAGE EXTERNAL``) against a large object, raw asyncpg on scratch tables of an empty
   database: write and read MB/s, size on disk, a 64 KiB range read from the middle; random
   and compressible content; a 1 MiB file and a large one (``--attachments-mib``).
2. HTTP (``transfer.py``): upload and download MB/s of the same two sizes through a Mnemo
   server process over loopback, beside raw asyncpg moving the same bytes into and out of a
   chunk table (the ceiling); the server's peak memory above idle during an upload and a
   download of ``--attachments-huge-mib``; the thumbnail of a 12-megapixel JPEG
   (``thumbnails.py``), first request and second, beside Pillow alone.

Targets (issue 11): download >= 100 MB/s, upload >= 50 MB/s, peak memory < 64 MiB above idle.
Within each round the contenders take turns (the order alternates between rounds); the tables
show medians over ``--attachments-rounds`` rounds (big files: 5 would take too long).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

from bench.attachments import storage, transfer

# name: (full run, --quick, help); each can be overridden on the command line.
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "attachments_rounds": (3, 2, "rounds of the attachments suite (it replaces --rounds)"),
    "attachments_mib": (100, 16, "MiB of the large file (the small one is 1 MiB)"),
    "attachments_huge_mib": (1024, 256, "MiB of the upload and download whose memory is sampled"),
    "attachments_range_reads": (50, 20, "64 KiB range reads per contender per round"),
    "attachments_thumbnails": (7, 3, "12-megapixel JPEGs uploaded for their thumbnails"),
}
PACKAGES = ("httpx", "pillow", "python-magic", "uvicorn", "starlette")


@dataclass
class Outcome:
    storage: list[storage.Result]
    transfer: transfer.Outcome

    @property
    def passed(self) -> bool:
        t = self.transfer
        return all(r.passed(d) for r in t.throughput for d in transfer.DIRECTIONS) and all(
            m.passed for m in t.memory
        )


def run(scratch_url: str, url: str, args: argparse.Namespace) -> Outcome:
    """Storage on the empty database at ``scratch_url``; HTTP on the migrated one at ``url``."""
    stored = asyncio.run(storage.run(scratch_url, args))
    return Outcome(stored, transfer.run(url, args))


def render(outcome: Outcome) -> str:
    return (
        "storage: chunked bytea against a large object, raw asyncpg, medians of"
        " the rounds\n\n"
        + storage.render(outcome.storage)
        + "\n\nHTTP: Mnemo's attachment routes over loopback / raw asyncpg moving the same"
        " bytes (1 MiB chunks, one transaction)\n\n" + transfer.render(outcome.transfer)
    )


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "storage": storage.as_json(outcome.storage),
        "http": transfer.as_json(outcome.transfer),
        "passed": outcome.passed,
    }
