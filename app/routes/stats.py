"""Storage stats (README "Storage stats"): ``GET /v1/admin/stats``, with the admin token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.endpoints import Endpoints, Param
from app.responses import record_response
from app.state import AppState
from dal.records.stats import Stats
from dal.usecases import retention, stats

endpoints = Endpoints()
_TOP = Param(
    "top",
    f"how many users and threads to list, 1-{stats.MAX_TOP} (default 10)",
    {"type": "integer", "minimum": 1, "maximum": stats.MAX_TOP, "default": 10},
)
_RETENTION = Param(
    "retention",
    "also what the retention policies would delete now (a dry run of every batch: as long as "
    "a retention run, so off by default)",
    {"type": "boolean", "default": False},
)


@endpoints.get(
    "/v1/admin/stats",
    "Storage stats: rows and bytes per table, the biggest users and threads, the oldest "
    "data; with retention=true, what the retention policies would delete now",
    auth="admin",
    params=(_TOP, _RETENTION),
    response=Stats,
    errors=(504,),
)
async def get_stats(request: Request[AppState]) -> Response:
    top = _TOP.integer(request)
    assert top is not None  # it has a default
    settings = request.state["settings"]
    answer = await stats.get_stats(
        request.state["pool"],
        top=top,
        timeout=settings.app_stats_timeout,
        policy=retention.policy_of(settings),
        would_delete=_RETENTION.boolean(request),
        retention_batch=settings.retention_batch,
        retention_pause=settings.retention_pause_ratio,
    )
    return record_response(answer)
