"""What every ORM contender computes in Python before it inserts a message into Mnemo's table.

Mnemo's ``messages`` table keeps, beside the parts, their plain text (``content``) and their
sizes (``parts_bytes``, ``parts_count``, ``metadata_bytes``), NOT NULL, so a user mapping an
ORM onto it fills them in Python. The sizes are those of the JSON text PostgreSQL prints for
jsonb (``mnemo_parts_bytes``): keys shorter first, then bytewise, ``", "`` and ``": "``
between items. The size limits Mnemo's statement checks are checked here the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dal.gateways.messages import MAX_MESSAGE_BYTES, MAX_MESSAGE_PARTS


def jsonb_text(value: Any) -> str:
    """``value`` as PostgreSQL prints it once stored as jsonb (plain JSON values only)."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(value[k])}" for k in keys
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Derived:
    content: str
    parts_bytes: int
    parts_count: int
    metadata_bytes: int


def derive(parts: list[dict[str, Any]], metadata: dict[str, Any]) -> Derived:
    """The derived columns of a message; ValueError past Mnemo's size limits."""
    derived = Derived(
        content="\n".join(str(p["text"]) for p in parts if p.get("type") == "text"),
        parts_bytes=sum(len(jsonb_text(part).encode()) for part in parts),
        parts_count=len(parts),
        metadata_bytes=len(jsonb_text(metadata).encode()),
    )
    if (
        derived.parts_bytes > MAX_MESSAGE_BYTES
        or derived.parts_count > MAX_MESSAGE_PARTS
        or derived.metadata_bytes > MAX_MESSAGE_BYTES
    ):
        raise ValueError("message too large")
    return derived
