"""The retention runs the suite measures: a thread TTL, then keep-N, each Mnemo's
``dal.usecases.retention.run_retention`` run to its end with one policy on, on a pool of its
own, while the workload runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dal.records.retention import RetentionPolicy
from dal.usecases.retention import run_retention


@dataclass(frozen=True)
class Policy:
    key: str  # "thread_ttl" or "keep_n"
    title: str
    ttl_days: int | None = None
    keep: int | None = None


async def run_policy(pool: Any, policy: Policy, *, now: datetime, batch: int) -> dict[str, Any]:
    """Run ``policy`` to its end with ``now`` as its clock; returns run_retention's report."""
    chosen = RetentionPolicy(thread_days=policy.ttl_days, keep_checkpoints=policy.keep)
    report = await run_retention(pool, chosen, now=now, batch=batch)
    return report.model_dump(mode="json")
