"""What the server reports about itself (the readiness check)."""

from __future__ import annotations

from pydantic import (
    BaseModel,
)

from dal.records.base import ROW

# --- meta -------------------------------------------------------------------------------


class ServerState(BaseModel):
    model_config = ROW
    server_version: int
    applied_migrations: list[str]
