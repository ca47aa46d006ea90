"""Mnemo's HTTP API: ``create_app(settings)`` returns the Starlette app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from app import routes
from app.endpoints import routes_of
from app.errors import EXCEPTION_HANDLERS
from app.middleware import MnemoRouter, RequestTargetCheck
from app.openapi import openapi_endpoint
from app.state import lifespan_for
from dal.settings import Settings


def create_app(settings: Settings | None = None) -> Starlette:
    """The app; the pool opens and closes with its lifespan (it never migrates). Its routes are
    the endpoints declared in app/routes (and ``/openapi.json``), one route per path."""
    settings = settings or Settings()
    app = Starlette(
        exception_handlers=EXCEPTION_HANDLERS, middleware=[Middleware(RequestTargetCheck)]
    )
    # Starlette builds its own router; ours never redirects (see there).
    app.router = MnemoRouter(
        routes_of((*routes.ENDPOINTS, openapi_endpoint(settings))), lifespan=lifespan_for(settings)
    )
    return app
