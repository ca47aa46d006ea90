"""Reading request bodies and query parameters: JSON only, size-limited, strictly validated."""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter, ValidationError
from starlette.requests import Request

from app.errors import HttpError
from app.state import AppState
from dal.errors import InvalidInput
from dal.records.base import JSON_DEPTH_CONTEXT, JsonObject

M = TypeVar("M", bound=BaseModel)

# A JSON \u0000 escape (not preceded by an escaped backslash): PostgreSQL can store the NUL
# character neither in text nor in jsonb, so it is refused up front with a clear 422.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
INT8_MAX = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only (int() also takes "1_0", "٣")


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_body(request: Request[AppState]) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds APP_MAX_BODY_BYTES."""
    limit = request.state["settings"].app_max_body_bytes
    declared = request.headers.get("content-length")
    # ASCII digits only (isdigit() takes "²", which int() refuses); int() also refuses over
    # 4,300 digits, and a number of 19 digits is over any limit anyway.
    if declared and declared.isascii() and declared.isdigit():
        if len(declared.lstrip("0")) > 18 or int(declared) > limit:
            raise HttpError(413, "body_too_large", f"request body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, "body_too_large", f"request body is over {limit} bytes")
    return bytes(body)


async def read_json(request: Request[AppState], model: type[M], *, optional: bool = False) -> M:
    """The body parsed and validated as ``model``: 415 if not JSON, 400 if malformed, 422 if
    invalid (JSON values checked as ``dal.records`` says: nesting up to APP_MAX_JSON_DEPTH,
    numbers that come back as sent). With ``optional``, an empty body counts as ``{}``."""
    body = await read_body(request)
    context = {JSON_DEPTH_CONTEXT: request.state["settings"].app_max_json_depth}
    if not body.strip() and optional:
        return model.model_validate_json(b"{}", context=context)
    if not _is_json(request.headers.get("content-type", "")):
        raise HttpError(415, "unsupported_media_type", "send the body as application/json")
    if _NUL_ESCAPE.search(body):
        raise InvalidInput("text may not contain the NUL character (\\u0000)")
    try:
        return model.model_validate_json(body, context=context)
    except ValidationError as exc:
        if gave_up := _parser_gave_up(exc, context[JSON_DEPTH_CONTEXT]):
            raise HttpError(422, "validation_error", gave_up) from exc
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise HttpError(400, "malformed_json", "the body is not valid JSON") from exc
        if any(
            error["type"] == "model_type" for error in exc.errors()
        ) and not body.lstrip().startswith(b"{"):
            raise InvalidInput("the body must be a JSON object") from exc
        raise


def _parser_gave_up(exc: ValidationError, depth_limit: int) -> str | None:
    """Why pydantic's JSON parser stopped on valid JSON, said as the rule says it, or None.

    It stops at 200 levels of nesting, before any field is known: a body that deep holds a
    value over the limit (at most 128), whatever its field. And at integer parts of over
    4,300 digits, which are past a double's range anyway.
    """
    for error in exc.errors(include_input=False):
        if error["type"] != "json_invalid":
            continue
        reason = str((error.get("ctx") or {}).get("error", ""))
        if reason.startswith("recursion limit exceeded"):
            return f"nested deeper than {depth_limit} levels"
        if reason.startswith("number out of range"):
            return "number out of range: numbers are doubles, at most about 1.8e308 in magnitude"
    return None


# A JSON object in a query parameter, parsed and checked as the bodies' JSON values are.
_JSON_OBJECT: TypeAdapter[JsonObject] = TypeAdapter(
    JsonObject, config=ConfigDict(strict=True, allow_inf_nan=False)
)


def json_object_param(request: Request[AppState], name: str) -> dict[str, JsonValue] | None:
    """A query parameter holding a JSON object (URL-encoded), read as bodies are (same parser,
    nesting limit and number rule); None if absent or empty, InvalidInput otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    limit = request.state["settings"].app_max_json_depth
    text = raw.encode()
    if _NUL_ESCAPE.search(text):
        raise InvalidInput(f"{name}: text may not contain the NUL character (\\u0000)")
    try:
        return _JSON_OBJECT.validate_json(text, context={JSON_DEPTH_CONTEXT: limit})
    except ValidationError as exc:
        if gave_up := _parser_gave_up(exc, limit):
            raise InvalidInput(f"{name}: {gave_up}") from exc
        problems = [
            error["msg"]
            for error in exc.errors(include_input=False)
            if error["type"] in ("json_too_deep", "json_number")
        ]
        if problems:
            raise InvalidInput(f"{name}: {problems[0]}") from exc
        raise InvalidInput(f'{name} must be a JSON object, e.g. {{"source": "loop"}}') from exc


def int_param(
    request: Request[AppState],
    name: str,
    *,
    default: int | None,
    minimum: int = 0,
    maximum: int = INT8_MAX,
) -> int | None:
    """An integer query parameter within [minimum, maximum]; InvalidInput otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise InvalidInput(f"{name} must be an integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be between {minimum} and {maximum}")
    return value
