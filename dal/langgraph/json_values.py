"""Checkpoints as JSON: decode what the LangGraph saver serialized, then make it JSON.

The HTTP API shows an agent's state to clients that are not Python. A stored checkpoint is
decoded by the codec (``dal.langgraph.codec``), its serialized values with LangGraph's
serializer in its strict mode: the safe types (LangChain messages, datetimes, UUIDs, sets...)
are rebuilt, any other class is not imported or called (its serialized fields come back
instead). The decoded values are then converted to JSON values by ``json_value``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence, Set
from datetime import date, datetime, time
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from pydantic import BaseModel, JsonValue

from dal.langgraph.codec import decode_checkpoint, strict_serializer
from dal.records.checkpoints import CheckpointRow
from dal.records.threads import PendingWrite, ThreadState


def json_value(value: Any) -> JsonValue:
    """A Python value as a JSON value.

    JSON scalars stay (NaN and infinities become their text); mappings become objects with
    string keys; pydantic models (LangChain messages among them) ``model_dump(mode="json")``;
    dataclasses and named tuples objects of their fields; lists, tuples, deques and sets
    lists; bytes base64; datetimes, dates and times ISO 8601; enums their value; anything
    else (UUIDs, decimals, paths...) ``str()``.
    """
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, enum.Enum):
        return json_value(value.value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, Mapping):
        return {_key(k): json_value(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode()
    if isinstance(value, tuple):
        if kind.__name__ == "_DeltaSnapshot":
            # LangGraph's snapshot of a DeltaChannel (a one-field named tuple): its value.
            return json_value(value[0])
        if hasattr(value, "_asdict"):  # a named tuple
            return json_value(value._asdict())
    if isinstance(value, Sequence | Set):
        items = [json_value(item) for item in value]
        if isinstance(value, Set):
            try:
                items.sort()
            except TypeError:  # not comparable: keep the iteration order
                pass
        return items
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, BaseModel):
        try:
            dumped = value.model_dump(mode="json")
        except Exception:  # a field pydantic cannot make JSON: convert its Python value
            dumped = value.model_dump()
        return json_value(dumped)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name, None)) for f in dataclasses.fields(value)}
    if kind.__module__.startswith("langgraph.") and hasattr(kind, "__slots__"):
        # LangGraph's own small classes (Send): their fields.
        return {
            name: json_value(getattr(value, name))
            for name in kind.__slots__
            if hasattr(value, name)
        }
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return json_value(tolist())
    try:
        return str(value)
    except Exception:
        return f"<{kind.__name__}>"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    converted = json_value(key)
    return converted if isinstance(converted, str) else str(converted)


def _undecodable(type_: str | None, data: bytes | None) -> JsonValue:
    """What stands for a value that cannot be decoded (an unknown serialization, a
    corrupt blob): its serialization type and its bytes, base64."""
    return {
        "undecodable": True,
        "type": type_,
        "data": base64.b64encode(data or b"").decode(),
    }


# Deepest decoded value shown: a response wraps it in 4 or 5 levels more, and pydantic's JSON
# serializer stops at about 254 (a graph's msgpack blob can hold 255).
MAX_SHOWN_DEPTH = 200


def _deeper_than(value: JsonValue, limit: int) -> bool:
    """Whether a JSON value nests more than ``limit`` lists and dicts (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def decode_value(serde: SerializerProtocol, type_: str | None, data: bytes | None) -> JsonValue:
    """A serialized value (a blob or a write) as JSON; never raises."""
    try:
        value = json_value(serde.loads_typed((type_ or "", data or b"")))
    except Exception:  # includes RecursionError on absurdly nested values
        return _undecodable(type_, data)
    return _undecodable(type_, data) if _deeper_than(value, MAX_SHOWN_DEPTH) else value


def _created_at(checkpoint: Mapping[str, Any]) -> datetime | None:
    ts = checkpoint.get("ts")
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _inline_value(value: Any) -> JsonValue:
    try:
        return json_value(value)
    except RecursionError:
        return _undecodable("json", None)


def thread_state(row: CheckpointRow, serde: SerializerProtocol | None = None) -> ThreadState:
    """A stored checkpoint as JSON, decoded as the saver reads it (``decode_checkpoint``),
    serialized values with ``serde`` (default: the strict serializer) and never raising."""
    strict = serde or strict_serializer()
    decoded = decode_checkpoint(
        row,
        inline=_inline_value,
        load=lambda type_, data: decode_value(strict, type_, data),
    )
    return ThreadState.from_values(
        {
            "thread_id": row.thread_id,
            "checkpoint_ns": row.checkpoint_ns,
            "checkpoint_id": row.checkpoint_id,
            "parent_checkpoint_id": row.parent_checkpoint_id,
            "created_at": _created_at(row.checkpoint),
            "metadata": row.metadata,
            "values": decoded.values,
            "pending_writes": [
                PendingWrite.from_values({"task_id": task_id, "channel": channel, "value": value})
                for task_id, channel, value in decoded.pending_writes
            ],
        }
    )
