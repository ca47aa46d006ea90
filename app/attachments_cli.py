"""``mnemo attachments gc``: collect the files no message references (README "Attachments"),
through dal.usecases.attachments, a progress line on stderr per batch."""

from __future__ import annotations

import asyncio
import sys

import orjson

import dal
from dal import embedded
from dal.gateways import attachments as gateway
from dal.records.attachments import Collected
from dal.settings import Settings
from dal.usecases import attachments


def collect(settings: Settings, *, grace: float | None, batch: int, dry_run: bool) -> int:
    """Collect (or with ``dry_run`` count) the garbage; print the totals as JSON."""
    if grace is None:
        grace = float(settings.app_attachment_grace_seconds)
    if grace < 0 or not 1 <= batch <= 10_000:
        print("mnemo: --grace must be 0 or more, --batch 1 to 10000", file=sys.stderr)
        return 2
    done = {"attachments": 0, "bytes": 0}

    def progress(figures: Collected) -> None:
        done["attachments"] += figures.attachments
        done["bytes"] += figures.bytes
        print(
            f"collected {done['attachments']} files, {done['bytes']:,} bytes",
            file=sys.stderr,
            flush=True,
        )

    async def run(url: str) -> Collected:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            if dry_run:
                return await gateway.count_orphaned_attachments(db, grace=grace)
            return await attachments.collect_attachments(
                db, grace=grace, batch=batch, on_batch=progress
            )

    with embedded.held_database(settings) as url:
        try:
            totals = asyncio.run(run(url))
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    answer = {**totals.model_dump(), "dry_run": dry_run, "grace_seconds": grace}
    print(orjson.dumps(answer).decode())
    return 0
