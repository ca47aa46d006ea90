"""One module per resource, each declaring its endpoints beside their handlers
(``endpoints = app.endpoints.Endpoints()``). The app serves, and documents, the endpoints of
the modules named in ``MODULES``, in that order: a new resource is its module plus its name
there."""

from __future__ import annotations

from importlib import import_module

from app.endpoints import Endpoint, Endpoints

MODULES = (
    "health",
    "users",
    "auth",
    "conversations",
    "messages",
    "branches",
    "threads",
    "transfer",
    "search",
    "feedback",
    "members",
    "reads",
    "sessions",
    "attachments",
    "snapshots",
    "tasks",
    "events",
    "event_streams",
    "profiles",
    "stats",
)


def _declared(module: str) -> Endpoints:
    endpoints = import_module(f"{__name__}.{module}").endpoints
    if not isinstance(endpoints, Endpoints):
        raise TypeError(f"app.routes.{module}.endpoints is not an Endpoints")
    return endpoints


ENDPOINTS: tuple[Endpoint, ...] = tuple(e for m in MODULES for e in _declared(m))
