"""Pages: the page-size bound every list shares, and opaque keyset cursors for lists ordered
by ``(updated_at, key)``, newest first.

A cursor is the ``(updated_at, key)`` of the last row of a page, as URL-safe base64 of a JSON
pair (no padding). Clients pass it back unchanged; anything else is InvalidInput.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from uuid import UUID

import orjson

from dal.errors import InvalidInput

# The most rows a page of any list holds (the ``limit`` of every list gateway).
MAX_PAGE_SIZE = 200


def check_limit(limit: int) -> int:
    """A page size a list takes: 1 to MAX_PAGE_SIZE; InvalidInput otherwise."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


class Updated(Protocol):
    @property
    def updated_at(self) -> datetime: ...


R = TypeVar("R", bound=Updated)


def next_cursor(items: Sequence[R], more: bool, key: Callable[[R], str]) -> str | None:
    """The cursor of the page after ``items`` (keyset of its last row), or None when no more
    rows follow."""
    if not more or not items:
        return None
    return encode_keyset(items[-1].updated_at, key(items[-1]))


def encode_keyset(updated_at: datetime, key: str) -> str:
    """The cursor of a row whose keyset is ``(updated_at, key)``."""
    raw = orjson.dumps([updated_at.isoformat(), key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_keyset(cursor: str) -> tuple[datetime, str]:
    """The ``(updated_at, key)`` inside a cursor; InvalidInput if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, key = orjson.loads(raw)
        when = datetime.fromisoformat(updated_at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        if not isinstance(key, str):
            raise TypeError("the key is not a string")
        return when.astimezone(UTC), key
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor is not valid") from exc


def encode_seq_keyset(seq: int, key: UUID) -> str:
    """The cursor of a row of a list ordered by ``(seq, key)`` within a conversation
    (feedback by message then user, files by message then id)."""
    raw = orjson.dumps([seq, str(key)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_seq_keyset(cursor: str) -> tuple[int, UUID]:
    """The ``(seq, key)`` inside such a cursor; InvalidInput if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        seq, key = orjson.loads(raw)
        if type(seq) is not int or not 0 <= seq < 2**63 or not isinstance(key, str):
            raise ValueError("not a (seq, key) cursor")
        return seq, UUID(key)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor is not valid") from exc
