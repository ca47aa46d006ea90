"""Ids: UUIDv7 (time-ordered, so new rows land at the right edge of their indexes)."""

from __future__ import annotations

from uuid import UUID

from uuid_utils.compat import uuid7


def new_id() -> UUID:
    return uuid7()
