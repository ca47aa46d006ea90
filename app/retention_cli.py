"""``mnemo retention run``: enforce the retention policies once (README "Retention"), through
dal.usecases.retention, a progress line on stderr per batch and the totals as JSON."""

from __future__ import annotations

import asyncio
import sys

import orjson

import dal
from dal import embedded
from dal.records.retention import RetentionPolicy, RetentionReport
from dal.settings import Settings
from dal.usecases import retention


def run(
    settings: Settings,
    *,
    batch: int | None,
    dry_run: bool,
    pause: float | None = None,
    thread_days: int | None = None,
    keep_checkpoints: int | None = None,
    conversation_days: int | None = None,
) -> int:
    """Run the policies of the settings (each option given replaces its setting; 0 turns it
    off); print the totals as JSON."""
    if batch is None:
        batch = settings.retention_batch
    if not 1 <= batch <= retention.MAX_BATCH:
        print(f"mnemo: --batch must be 1 to {retention.MAX_BATCH}", file=sys.stderr)
        return 2
    if pause is None:
        pause = settings.retention_pause_ratio
    if not 0 <= pause <= retention.MAX_PAUSE:
        print(f"mnemo: --pause-ratio must be 0 to {retention.MAX_PAUSE:g}", file=sys.stderr)
        return 2
    given = {
        "retention_thread_days": thread_days,
        "retention_keep_checkpoints": keep_checkpoints,
        "retention_conversation_days": conversation_days,
    }
    if any(value is not None and not 0 <= value <= 1_000_000 for value in given.values()):
        print("mnemo: the policies' options take 0 (off) to 1000000", file=sys.stderr)
        return 2
    policy: RetentionPolicy = retention.policy_of(
        settings.model_copy(update={k: v for k, v in given.items() if v is not None})
    )
    if not policy.enabled:
        print(
            "mnemo: no retention policy is set (RETENTION_THREAD_DAYS, "
            "RETENTION_KEEP_CHECKPOINTS, RETENTION_CONVERSATION_DAYS): nothing to do",
            file=sys.stderr,
        )

    def progress(report: RetentionReport) -> None:
        print(
            f"{'would delete' if dry_run else 'deleted'} {report.threads} threads, "
            f"{report.checkpoints} checkpoints, {report.checkpoint_blobs} blobs, "
            f"{report.checkpoint_writes} writes, {report.conversations} conversations, "
            f"{report.messages} messages ({report.batches} batches, {report.seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    async def go(url: str) -> RetentionReport:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            return await retention.run_retention(
                db, policy, batch=batch, dry_run=dry_run, progress=progress, pause=pause
            )

    with embedded.held_database(settings) as url:
        try:
            report = asyncio.run(go(url))
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    answer = {**report.model_dump(mode="json"), "policy": policy.model_dump()}
    print(orjson.dumps(answer).decode())
    return 0
