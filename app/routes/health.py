"""``GET /health``: the database answers and every migration is applied (no auth).

It answers within about APP_HEALTH_TIMEOUT whatever the database does (frozen, gone, every
pooled connection busy): a probe that waits as long as the requests it watches tells nothing.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from app.endpoints import RETRY_AFTER, Answer, Endpoints
from app.errors import RETRY_AFTER_SECONDS
from app.responses import record_response
from app.schemas import Health
from app.state import AppState
from dal.errors import Timeout, Unavailable
from dal.gateways import meta

endpoints = Endpoints()


@endpoints.get(
    "/health",
    "Database reachable and migrations current",
    auth="none",
    response=Health,
    # Its own answer when the database is not (within APP_HEALTH_TIMEOUT), never 504.
    database=False,
    answers=(
        Answer(
            503,
            "Database unavailable, or its migrations are not applied: retry after Retry-After",
            Health,
            (RETRY_AFTER,),
        ),
    ),
)
async def health(request: Request[AppState]) -> Response:
    try:
        # A connection interrupted by this deadline is dropped, not reused (dal.database).
        async with asyncio.timeout(request.state["settings"].app_health_timeout):
            state = await meta.get_server_state(request.state["pool"])
    except (Unavailable, Timeout, TimeoutError):
        return record_response(
            Health(status="unavailable"), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    applied = set(state.applied_migrations)
    pending = [m for m in request.state["expected_migrations"] if m not in applied]
    if pending:
        return record_response(
            Health(
                status="migrations_pending",
                server_version=state.server_version,
                pending_migrations=pending,
            ),
            503,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return record_response(Health(status="ok", server_version=state.server_version))
