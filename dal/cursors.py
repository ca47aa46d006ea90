"""Opaque keyset cursors for lists ordered by ``(updated_at, key)``, newest first.

A cursor is the ``(updated_at, key)`` of the last row of a page, as URL-safe base64 of a JSON
pair (no padding). Clients pass it back unchanged; anything else is InvalidInput.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import orjson

from dal.errors import InvalidInput


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
