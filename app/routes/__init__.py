"""One module per resource, each declaring its endpoints beside their handlers
(``endpoints = app.endpoints.Endpoints()``). The app serves, and documents, those of the
modules listed here: a new resource is its module plus one name in ``MODULES``."""

from __future__ import annotations

from app.endpoints import Endpoint
from app.routes import conversations, health, messages, threads, users

MODULES = (health, users, conversations, messages, threads)

ENDPOINTS: tuple[Endpoint, ...] = tuple(e for module in MODULES for e in module.endpoints)
