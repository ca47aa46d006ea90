"""Mnemo's data-access layer: typed async gateways over named SQL, on asyncpg.

import dal
from dal.gateways import conversations, messages

async with dal.connect() as db:  # DATABASE_URL, or the embedded server
    ...
"""

from __future__ import annotations

from dal.database import Executor, connect, open_pool, transaction
from dal.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    StaleVersion,
    Timeout,
    Unavailable,
)
from dal.settings import Settings

__all__ = [
    "Conflict",
    "DomainError",
    "Executor",
    "InvalidInput",
    "NotFound",
    "Settings",
    "StaleVersion",
    "Timeout",
    "Unavailable",
    "connect",
    "open_pool",
    "transaction",
]
