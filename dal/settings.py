"""Settings from the environment (and an optional ``.env`` file); defaults need none."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: the embedded server
    # under DATA_DIR, started on demand.
    database_url: str | None = None
    db_min_connections: int = Field(default=2, ge=0)
    db_max_connections: int = Field(default=10, ge=1)
    # Seconds to wait for a connection (connect, or a free one from the pool).
    db_connection_timeout: float = Field(default=5.0, gt=0)
    # statement_timeout of every session, in seconds; 0 disables it.
    db_query_timeout: float = Field(default=30.0, ge=0)
    # asyncpg's prepared-statement cache per connection; 0 behind PgBouncer (transaction mode).
    db_statement_cache_size: int = Field(default=100, ge=0)

    app_host: str = "127.0.0.1"
    app_port: int = Field(default=8000, ge=0, le=65535)
    # Bearer token for admin routes (creating users). Unset: `python -m app` makes one
    # in DATA_DIR/admin-token.
    app_admin_token: SecretStr | None = None
    app_max_body_bytes: int = Field(default=1024 * 1024, ge=1)

    # Where the embedded PostgreSQL keeps its data and the generated admin token live.
    data_dir: Path = PROJECT_DIR / ".data"
