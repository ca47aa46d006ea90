"""Database health and schema state."""

from __future__ import annotations

from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.queries import Q
from dal.records.meta import ServerState


async def get_server_state(db: Executor) -> ServerState:
    """Whether the database answers, its version, and which migrations it has applied."""
    row = await fetch_one(db, Q["get_server_state"])
    assert row is not None  # a SELECT without FROM always returns its row
    applied: list[str] = []
    if row["migrations_table"]:
        applied = [r["migration_id"] for r in await fetch_all(db, Q["list_applied_migrations"])]
    return ServerState(server_version=row["server_version"], applied_migrations=applied)


async def count_tables(db: Executor) -> int:
    """How many tables the database holds outside PostgreSQL's own schemas, yoyo's aside."""
    count: int = await fetch_value(db, Q["count_tables"])
    return count


async def ping(db: Executor) -> None:
    """Return once the server has answered on this connection."""
    await fetch_value(db, Q["get_alive"])


async def count_auth_listeners(db: Executor) -> int:
    """How many app processes listen for changes to authentication on this database."""
    count: int = await fetch_value(db, Q["count_auth_listeners"])
    return count


async def notify_auth_sync(db: Executor, *, key: str) -> None:
    """Send the marker ``key`` on mnemo_auth, after this process's change to authentication."""
    await fetch_value(db, Q["notify_auth_sync"], key)


async def notify_auth_applied(db: Executor, *, key: str) -> None:
    """Tell the app processes this one applied the authentication change ``key`` names."""
    await fetch_value(db, Q["notify_auth_applied"], key)
