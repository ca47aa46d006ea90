"""JSON responses from records (serialized by pydantic, straight to bytes)."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def record_response(
    record: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        record.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def no_content() -> Response:
    return Response(status_code=204)
