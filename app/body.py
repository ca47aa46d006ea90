"""Reading request bodies and query parameters: JSON only, size-limited, strictly validated."""

from __future__ import annotations

import math
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from app.errors import HttpError
from app.state import AppState
from dal.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

# A JSON \u0000 escape (not preceded by an escaped backslash): PostgreSQL can store the NUL
# character neither in text nor in jsonb, so it is refused up front with a clear 422.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
INT8_MAX = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only (int() also takes "1_0", "٣")
# JSON text that may parse to NaN or an infinite float: pydantic's JSON parser takes NaN and
# Infinity literals (and 1e400 overflows to inf) even in JSON values with allow_inf_nan=False,
# and the jsonb codec would then store null in their place. Only bodies matching this are
# walked (the walk costs more than the parse).
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|[eE][+-]?\d{3}|\d{300}")


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
    invalid. With ``optional``, an empty body counts as ``{}``."""
    body = await read_body(request)
    if not body.strip() and optional:
        return model.model_validate_json(b"{}")
    if not _is_json(request.headers.get("content-type", "")):
        raise HttpError(415, "unsupported_media_type", "send the body as application/json")
    if _NUL_ESCAPE.search(body):
        raise InvalidInput("text may not contain the NUL character (\\u0000)")
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise HttpError(400, "malformed_json", "the body is not valid JSON") from exc
        if any(
            error["type"] == "model_type" for error in exc.errors()
        ) and not body.lstrip().startswith(b"{"):
            raise InvalidInput("the body must be a JSON object") from exc
        raise
    if _MAYBE_NOT_FINITE.search(body) and not _all_finite(list(parsed.__dict__.values())):
        raise InvalidInput("numbers must be finite (no NaN or Infinity)")
    return parsed


def _all_finite(value: object) -> bool:
    """Whether no float inside a JSON value (nested dicts and lists) is NaN or infinite."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True


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
