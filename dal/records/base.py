"""What every record shares: output rows (frozen, built from database rows without
re-validation), patches, the JSON value checks, and the two page shapes.

Inputs (drafts, patches) are strict and forbid extra fields; outputs (rows) are frozen and
forbid extra fields. ``-- returns:`` headers in queries/*.sql name the record each query's rows
build, and tests/test_query_catalog.py checks the columns against the record's fields. Each
aggregate's records live in their own module of this package and import only this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

ROW = ConfigDict(frozen=True, extra="forbid")
_set = object.__setattr__
# NaN and Infinity are not JSON: the jsonb codec would silently write them as null.
INPUT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def whole_number(value: object) -> object:
    """A float with no fraction as the integer it is: JSON (and JSON Schema) make no difference
    between 60 and 60.0, while strict records take only the first. Anything else is left for
    the strict check to judge. (Use as a BeforeValidator of an integer field.)"""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- JSON values a client stores (metadata, a message part, a thread's values) -------------
# Each must nest at most MAX_JSON_DEPTH objects/arrays deep (the value itself is level 1) and
# hold only numbers that come back as sent: integers within 64 bits, floats finite (so within
# a double's range). A validation context {JSON_DEPTH_CONTEXT: n} sets another depth limit
# (the app passes APP_MAX_JSON_DEPTH). The README's "JSON values" states the rule.
MAX_JSON_DEPTH = 64
JSON_DEPTH_CONTEXT = "max_json_depth"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DOUBLE_MAX = 1.7976931348623157e308


def json_problem(value: object, max_depth: int) -> tuple[str, str] | None:
    """Why a parsed JSON value may not be stored, as (error type, message), or None.

    Iterative, so any depth is safe to check. Refuses nesting deeper than ``max_depth``, a
    float that is not finite (the JSON parser reads 1e400 as infinity; orjson would write it
    as null) and an integer beyond 64 bits (jsonb would keep it but nothing reads it back).
    """
    if not isinstance(value, dict | list):
        return _scalar_problem(value, ())
    if _fine(value, max_depth):
        return None
    return _locate(value, max_depth)


def _fine(value: dict[Any, Any] | list[Any], max_depth: int) -> bool:
    """Whether ``json_problem`` finds nothing: one level at a time, so that nothing is built
    per container (a body of 300,000 empty lists took a second when each one got a tuple, most
    of it in the garbage collector)."""
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            return False
        below: list[Any] = []
        push = below.append
        for container in level:
            for item in container.values() if isinstance(container, dict) else container:
                kind = type(item)  # exact types first: this loop sees every value of the body
                if kind is str or item is None or kind is bool:
                    continue
                if kind is dict or kind is list:
                    push(item)
                elif kind is float:
                    if not -_DOUBLE_MAX <= item <= _DOUBLE_MAX:  # also false for NaN
                        return False
                elif kind is int:
                    if not INT64_MIN <= item <= INT64_MAX:
                        return False
                elif isinstance(item, dict | list):  # subclasses, from Python callers
                    push(item)
                elif _scalar_problem(item, ()):
                    return False
        level = below
        depth += 1
    return True


def _locate(value: dict[Any, Any] | list[Any], max_depth: int) -> tuple[str, str] | None:
    """``json_problem`` of a value ``_fine`` refused, with where (only on the error path)."""
    # (container, its depth, its path as (parent path, key))
    stack: list[tuple[Any, int, Any]] = [(value, 1, ())]
    while stack:
        container, depth, path = stack.pop()
        if depth > max_depth:
            return "json_too_deep", f"nested deeper than {max_depth} levels{_at(path)}"
        pairs = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in pairs:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1, (path, key)))
            elif problem := _scalar_problem(item, (path, key)):
                return problem
    return None


def _scalar_problem(value: object, path: Any) -> tuple[str, str] | None:
    if isinstance(value, float) and not -_DOUBLE_MAX <= value <= _DOUBLE_MAX:
        return "json_number", (
            f"number out of range{_at(path)}: numbers are doubles, at most about 1.8e308 in "
            "magnitude (NaN and Infinity are not JSON)"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            return "json_number", (
                f"integer out of range{_at(path)}: integers are 64-bit, {INT64_MIN} to {INT64_MAX}"
            )
    return None


def _at(path: Any) -> str:
    """The " at a.0.b" of a (parent path, key) chain, cut short (keys are client text)."""
    keys: list[str] = []
    while path:
        path, key = path
        keys.append(str(key))
    where = ".".join(reversed(keys))
    return f" at {where[:60]}{'…' if len(where) > 60 else ''}" if keys else ""


def check_json(value: Any, info: ValidationInfo) -> Any:
    limit = (info.context or {}).get(JSON_DEPTH_CONTEXT, MAX_JSON_DEPTH)
    problem = json_problem(value, limit)
    if problem is not None:
        raise PydanticCustomError(problem[0], "{problem}", {"problem": problem[1]})
    return value


JsonObject = Annotated[dict[str, JsonValue], AfterValidator(check_json)]

Metadata = JsonObject

# A LangGraph thread id: any string the agent chose.
ThreadId = Annotated[str, StringConstraints(min_length=1, max_length=500)]


# The path a file is served at (README "Attachments"): a message `file` part whose url's path
# ends in it followed by the file's id references that file.
ATTACHMENT_PATH = "/v1/attachments/"


class Row(BaseModel):
    """An output record: frozen, no extra fields, built from a database row by ``from_row``."""

    model_config = ROW
    # The fields set of every record built by from_row; one set per class, shared (pydantic
    # copies it before changing it, in model_copy).
    _all_fields: ClassVar[set[str]] = set()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._all_fields = set(cls.__pydantic_fields__)

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | asyncpg.Record) -> Self:
        """The record of a row of one of our named queries, without re-validating it.

        The row's types are the schema's (uuid, int8, text, timestamptz, jsonb decoded by the
        codec; role and status held by CHECK constraints), and tests/test_query_catalog.py
        checks that each query returns exactly the record's fields, so validation would only
        repeat what PostgreSQL guarantees. It used to cost as much as the fetch itself on a
        page of 50 messages; tests/test_records.py shows both ways build equal records.
        """
        return cls.from_values(dict(row.items()))

    @classmethod
    def from_rows(cls, rows: Sequence[asyncpg.Record]) -> list[Self]:
        """``from_row`` for many rows of one query (their column names are read once)."""
        if not rows:
            return []
        names = tuple(rows[0].keys())
        # The hot path of every page: from_values inlined, names bound locally.
        new, fields, records = cls.__new__, cls._all_fields, []
        for row in rows:
            record = new(cls)
            _set(record, "__dict__", dict(zip(names, row, strict=False)))
            _set(record, "__pydantic_fields_set__", fields)
            _set(record, "__pydantic_extra__", None)
            _set(record, "__pydantic_private__", None)
            records.append(record)
        return records

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Self:
        """``from_row`` of a dict of column values, which the record then owns."""
        record = cls.__new__(cls)
        _set(record, "__dict__", values)
        _set(record, "__pydantic_fields_set__", cls._all_fields)
        _set(record, "__pydantic_extra__", None)
        _set(record, "__pydantic_private__", None)
        return record


class Patch(BaseModel):
    """A partial update: absent or null fields stay as they are; an empty patch is an error
    (it would change nothing but the row's version and timestamp)."""

    model_config = INPUT

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self


def not_null(value: Any, info: ValidationInfo) -> Any:
    """A patch field that cannot be null: refused, not silently kept (absent keeps it)."""
    if value is None:
        raise ValueError(f"{info.field_name} cannot be null: leave it out to keep it")
    return value


def without_null(schema: dict[str, Any]) -> None:
    """The JSON schema of a ``NOT_NULL`` field: its type without null, no default."""
    schema.pop("default", None)
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


# A patch field that may be absent (None: keep) but not null (refused by not_null).
NOT_NULL: Any = Field(default=None, json_schema_extra=without_null)


T = TypeVar("T")


class CursorPage(Row, Generic[T]):
    """A page of a list ordered by ``(updated_at, key)``, newest first: pass ``next_cursor``
    back for the next page (None on the last one)."""

    items: list[T]
    next_cursor: str | None


class ListPage(Row, Generic[T]):
    """A page of a list that says whether more rows follow (``has_more``)."""

    items: list[T]
    has_more: bool
