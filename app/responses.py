"""JSON responses from records, rendered in one pass by orjson.

A record's ``__dict__`` holds its field values (``Row.from_row`` puts the row's columns
there, in the query's order), so orjson writes a page of records straight to bytes, calling
back here only for each record (its ``__dict__`` as it is when its keys are in field order,
else a copy in field order) and for asyncpg's UUIDs (orjson writes only the standard
library's). The options make the bytes pydantic's ``model_dump_json`` would write
(``Z`` for UTC, the same float and string forms); tests/app/test_rendering.py holds every
response model of the routes to that on records read back from a database. A model whose
output pydantic shapes otherwise (aliases, serializers, computed or excluded fields, its own
JSON settings), and any value orjson cannot write as pydantic would (an integer beyond 64
bits, a non-string key...), is rendered by pydantic instead.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel
from starlette.responses import Response

_OPTIONS = orjson.OPT_UTC_Z
# Per model class: its field names in order, or None when pydantic must render it.
_FIELDS: dict[type[BaseModel], tuple[str, ...] | None] = {}


class _Unplain(Exception):
    """A value orjson would not render as pydantic does: the whole record goes to pydantic."""


def _plain_fields(cls: type[BaseModel]) -> tuple[str, ...] | None:
    """``cls``'s field names if its JSON is its fields' values under their own names."""
    config = cls.model_config
    if (
        cls.__pydantic_decorators__.field_serializers
        or cls.__pydantic_decorators__.model_serializers
        or cls.__pydantic_computed_fields__
        or config.get("extra") == "allow"
        or any(key.startswith("ser_json_") or key == "serialize_by_alias" for key in config)
        or config.get("alias_generator") is not None
    ):
        return None
    for name, field in cls.__pydantic_fields__.items():
        if field.exclude or field.alias not in (None, name) or field.serialization_alias:
            return None
        if field.metadata and any(type(m).__name__.endswith("Serializer") for m in field.metadata):
            return None
    return tuple(cls.__pydantic_fields__)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        cls = type(value)
        try:
            fields = _FIELDS[cls]
        except KeyError:
            fields = _FIELDS[cls] = _plain_fields(cls)
        if fields is None:
            raise _Unplain
        values = value.__dict__
        if tuple(values) == fields:
            return values
        return {name: values[name] for name in fields}
    if isinstance(value, UUID):
        return str(value)
    raise _Unplain


def render(record: BaseModel) -> bytes:
    """The JSON of ``record``: byte for byte ``record.model_dump_json()``, encoded."""
    try:
        return orjson.dumps(record, default=_default, option=_OPTIONS)
    except (orjson.JSONEncodeError, KeyError):
        return record.model_dump_json().encode()


def record_response(
    record: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        render(record),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def no_content() -> Response:
    return Response(status_code=204)
