"""Mnemo's HTTP API: ``create_app(settings)`` returns the Starlette app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from app.errors import EXCEPTION_HANDLERS
from app.middleware import MnemoRouter, RequestTargetCheck
from app.openapi import openapi_route
from app.routes import conversations, health, messages, threads, users
from app.state import lifespan_for
from dal.settings import Settings


def create_app(settings: Settings | None = None) -> Starlette:
    """The app; the pool opens and closes with its lifespan (it never migrates)."""
    settings = settings or Settings()
    routes = [
        *health.routes,
        *users.routes,
        *conversations.routes,
        *messages.routes,
        *threads.routes,
        openapi_route(settings),
    ]
    app = Starlette(
        exception_handlers=EXCEPTION_HANDLERS, middleware=[Middleware(RequestTargetCheck)]
    )
    # Starlette builds its own router; ours differs on 405 and trailing slashes (see there).
    app.router = MnemoRouter(routes, lifespan=lifespan_for(settings))
    return app
