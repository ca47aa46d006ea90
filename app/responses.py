"""JSON responses from records, rendered in one pass by orjson.

A record's ``__dict__`` holds its field values (``Row.from_row`` puts the row's columns
there, in the query's order), so a page of records is handed to orjson as the page's fields
with its records' ``__dict__``s (each as it is when its keys are in field order, else a copy
in field order), and orjson calls back here only for asyncpg's UUIDs (it writes only the
standard library's). A callback per record cost more than the rest of the rendering: a page
of 50 messages took 115 us that way, 45 us this way. The options make the bytes pydantic's
``model_dump_json`` would write (``Z`` for UTC, the same float and string forms);
tests/app/test_rendering.py holds every response model of the routes to that on records read
back from a database. A model whose output pydantic shapes otherwise (aliases, serializers,
computed or excluded fields, its own JSON settings), and any value orjson cannot write as
pydantic would (an integer beyond 64 bits, a non-string key...), is rendered by pydantic
instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args
from uuid import UUID

import orjson
from pydantic import BaseModel
from starlette.responses import Response

_OPTIONS = orjson.OPT_UTC_Z


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


def _holds_models(annotation: Any) -> bool:
    """Whether a field of this type may hold a model (itself, in a list, optional...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_models(arg) for arg in get_args(annotation))


@dataclass(frozen=True)
class _Plan:
    """How a model class renders: its field names in order, and those that may hold models
    (turned into dicts before orjson runs; the others are written as they are)."""

    fields: tuple[str, ...]
    nested: tuple[str, ...]


# Per model class: its plan, or None when pydantic must render it.
_PLANS: dict[type[BaseModel], _Plan | None] = {}


def _plan(cls: type[BaseModel]) -> _Plan | None:
    try:
        return _PLANS[cls]
    except KeyError:
        fields = _plain_fields(cls)
        plan = None
        if fields is not None:
            nested = tuple(
                name
                for name, field in cls.__pydantic_fields__.items()
                if _holds_models(field.annotation)
            )
            plan = _Plan(fields, nested)
        _PLANS[cls] = plan
        return plan


def _plain(record: BaseModel) -> dict[str, Any]:
    """The record as a dict orjson writes as pydantic would: its ``__dict__`` itself when its
    keys are in field order (as ``Row.from_row`` leaves them) and it holds no model, else a
    copy in field order with its models (alone, in lists or tuples) made dicts too."""
    plan = _plan(type(record))
    if plan is None:
        raise _Unplain
    values = record.__dict__
    if plan.nested:
        values = {name: values[name] for name in plan.fields}
        for name in plan.nested:
            value = values[name]
            if isinstance(value, BaseModel):
                values[name] = _plain(value)
            elif isinstance(value, list | tuple):
                values[name] = _plain_items(value)
            elif value is not None and not isinstance(value, str | int | float | bool):
                raise _Unplain  # a dict of models, a set...: pydantic's business
        return values
    if tuple(values) != plan.fields:
        return {name: values[name] for name in plan.fields}
    return values


def _plain_items(items: list[Any] | tuple[Any, ...]) -> list[Any]:
    """``_plain`` of each model of a list (a page's items), the plan looked up once per run of
    one class: the hot loop of every page."""
    out: list[Any] = []
    cls: type | None = None
    fields: tuple[str, ...] = ()
    flat = False
    for item in items:
        if type(item) is not cls:
            cls = type(item)
            plan = _plan(cls) if isinstance(item, BaseModel) else None
            flat = plan is not None and not plan.nested
            fields = plan.fields if plan is not None else ()
        if flat:
            values = item.__dict__
            out.append(
                values if tuple(values) == fields else {name: values[name] for name in fields}
            )
        elif isinstance(item, BaseModel):
            out.append(_plain(item))
        else:
            out.append(item)
    return out


def _default(value: Any) -> Any:
    # Called by orjson for what it does not write itself: here only asyncpg's UUIDs (the
    # standard library's orjson writes, not their subclass).
    if isinstance(value, UUID):
        return str(value)
    raise _Unplain


def render(record: BaseModel) -> bytes:
    """The JSON of ``record``: byte for byte ``record.model_dump_json()``, encoded."""
    try:
        return orjson.dumps(_plain(record), default=_default, option=_OPTIONS)
    except (orjson.JSONEncodeError, KeyError, _Unplain):
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
