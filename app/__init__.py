"""Mnemo's HTTP API: ``create_app(settings)`` returns the Starlette app."""

from __future__ import annotations

from functools import cache

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.errors import EXCEPTION_HANDLERS
from app.middleware import MnemoRouter, RequestTargetCheck
from app.openapi import build_openapi
from app.routes import conversations, health, messages, threads, users
from app.state import lifespan_for
from dal.settings import Settings


@cache
def _openapi_bytes() -> bytes:
    return orjson.dumps(build_openapi())


async def openapi(request: Request) -> Response:
    return Response(_openapi_bytes(), media_type="application/json")


def create_app(settings: Settings | None = None) -> Starlette:
    """The app; the pool opens and closes with its lifespan (it never migrates)."""
    settings = settings or Settings()
    routes = [
        *health.routes,
        *users.routes,
        *conversations.routes,
        *messages.routes,
        *threads.routes,
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(
        exception_handlers=EXCEPTION_HANDLERS, middleware=[Middleware(RequestTargetCheck)]
    )
    # Starlette builds its own router; ours differs on 405 and trailing slashes (see there).
    app.router = MnemoRouter(routes, lifespan=lifespan_for(settings))
    return app
