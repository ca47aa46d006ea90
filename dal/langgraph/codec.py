"""How LangGraph's checkpoints are stored, in one place: the saver and the HTTP API use it.

- the serializer: LangGraph's (``serializer()``, what a saver has by default), and the strict
  one that only shows values (``strict_serializer()``: nothing outside its allowlist of safe
  types is imported or constructed while decoding);
- the inline rule (``stays_inline``): a channel value JSON holds exactly stays in the
  checkpoint's JSON, any other is serialized and stored once per version as a blob;
- channel versions (``next_version``): text that sorts, a counter then a random part;
- building a checkpoint to save (``encode_values``, ``checkpoint_put``, and
  ``update_checkpoint`` for a state written without a graph);
- decoding a stored checkpoint row (``decode_checkpoint``): inline values, then the blobs of
  its channel versions over them, and its pending writes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from dal.records.checkpoints import Blob, CheckpointPut, CheckpointRow

T = TypeVar("T")

_INT64 = range(-(2**63), 2**63)
# The version of LangGraph's checkpoint format that ``update_checkpoint`` writes.
CHECKPOINT_FORMAT = 4


def serializer() -> SerializerProtocol:
    """LangGraph's serializer, as a saver has it unless given another (``saver.serde``)."""
    return JsonPlusSerializer()


def strict_serializer() -> SerializerProtocol:
    """LangGraph's serializer restricted to its allowlist of safe types: for values that are
    only shown, so no class outside it is imported or constructed while decoding them."""
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def stays_inline(value: Any) -> bool:
    """Whether a channel value is kept as is in the checkpoint's JSON (else: a blob).

    Only values JSON holds exactly: a str with a NUL character (PostgreSQL refuses it in
    jsonb), an int beyond 64 bits or a non-finite float go to a blob instead; so do lists,
    dicts and any other object.
    """
    if value is None or value is True or value is False:
        return True
    kind = type(value)
    if kind is str:
        return "\x00" not in value
    if kind is int:
        return value in _INT64
    if kind is float:
        return math.isfinite(value)
    return False


# --- versions ----------------------------------------------------------------------------


def next_version(current: str | int | None) -> str:
    """The version after ``current``. Versions sort as text; the random part keeps two branches
    of a forked thread from writing different values under one version (blobs are keyed by
    version)."""
    if current is None:
        number = 0
    elif isinstance(current, int):
        number = current
    else:
        number = int(str(current).split(".")[0])
    return f"{number + 1:032}.{random.random():016}"


def version_number(version: object) -> int:
    """The counter of a channel version ("<counter>.<random>"); 0 if it has none."""
    try:
        return int(str(version).split(".", 1)[0])
    except ValueError:
        return 0


def newest_version(versions: Mapping[str, Any]) -> Any:
    """The highest of a checkpoint's channel versions (by counter); None if it has none."""
    return max(versions.values(), key=version_number, default=None)


# --- building a checkpoint ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncodedValues:
    """A checkpoint's channel values as stored: ``inline`` in its JSON, the others
    ``serialized`` (channel -> (type, bytes)), not yet given a version."""

    inline: dict[str, Any]
    serialized: dict[str, tuple[str, bytes]]


def encode_values(
    values: Mapping[str, Any],
    dumps: Callable[[str, Any], tuple[str, bytes]],
    *,
    changed: Container[str] | None = None,
) -> EncodedValues:
    """Split channel values by ``stays_inline``; ``dumps(channel, value)`` serializes the others,
    only those of ``changed`` channels when given (a blob is stored once per version: an
    unchanged channel's blob is stored already)."""
    inline: dict[str, Any] = {}
    serialized: dict[str, tuple[str, bytes]] = {}
    for channel, value in values.items():
        if stays_inline(value):
            inline[channel] = value
        elif changed is None or channel in changed:
            serialized[channel] = dumps(channel, value)
    return EncodedValues(inline, serialized)


def checkpoint_put(
    *,
    owner: UUID,
    thread_id: str,
    checkpoint_ns: str,
    parent_checkpoint_id: str | None,
    checkpoint: Mapping[str, Any],
    metadata: Mapping[str, Any],
    values: EncodedValues,
    versions: Mapping[str, Any],
) -> CheckpointPut:
    """What saves a LangGraph checkpoint: its JSON holding the inline values, and a blob per
    serialized value at its channel's version in ``versions``."""
    return CheckpointPut(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint["id"],
        parent_checkpoint_id=parent_checkpoint_id,
        checkpoint={**checkpoint, "channel_values": values.inline},
        metadata=metadata,
        blobs=[
            Blob(channel=channel, version=str(versions[channel]), type=type_, value=data)
            for channel, (type_, data) in values.serialized.items()
        ],
        owner=owner,
    )


def update_checkpoint(checkpoint_id: str, channels: Sequence[str], version: str) -> dict[str, Any]:
    """A LangGraph checkpoint (its values left out) of a state written as a whole, as LangGraph
    writes a state update: every channel at the new ``version``, no task has seen it."""
    return {
        "v": CHECKPOINT_FORMAT,
        "id": checkpoint_id,
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": {},
        "channel_versions": dict.fromkeys(channels, version),
        "versions_seen": {},
        "updated_channels": list(channels),
    }


# --- decoding a stored checkpoint --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    """A stored checkpoint's channel values and pending writes (task id, channel, value)."""

    values: dict[str, T]
    pending_writes: list[tuple[str, str, T]]


def decode_checkpoint(
    row: CheckpointRow,
    *,
    load: Callable[[str | None, bytes | None], T],
    inline: Callable[[Any], T] | None = None,
) -> Decoded[T]:
    """A checkpoint row's values: the inline ones (through ``inline`` if given, else as they
    are), then the blobs of its channel versions over them (an "empty" blob is a channel without
    a value), and its pending writes; ``load(type, bytes)`` decodes each serialized value."""
    stored = row.checkpoint.get("channel_values") or {}
    values: dict[str, T] = (
        dict(stored) if inline is None else {ch: inline(value) for ch, value in stored.items()}
    )
    if row.blob_channels:
        assert row.blob_types is not None and row.blob_values is not None
        for channel, type_, data in zip(
            row.blob_channels, row.blob_types, row.blob_values, strict=True
        ):
            if type_ != "empty" and data is not None:
                values[channel] = load(type_, data)
    pending: list[tuple[str, str, T]] = []
    if row.write_task_ids:
        assert row.write_channels and row.write_types and row.write_values
        for task_id, channel, write_type, data in zip(
            row.write_task_ids, row.write_channels, row.write_types, row.write_values, strict=True
        ):
            pending.append((task_id, channel, load(write_type, data)))
    return Decoded(values, pending)
