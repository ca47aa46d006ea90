"""Search over the caller's messages: text (English and CJK, web-search syntax) and filters."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from app.auth import caller
from app.body import json_object_param
from app.endpoints import CURSOR, JSON_INPUT_REF, NO_NUL, Endpoints, Param, limit_param
from app.responses import record_response
from app.state import AppState
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import InvalidInput
from dal.gateways import messages
from dal.records.search import MAX_QUERY_CHARS, MessageSearch, SearchPage

endpoints = Endpoints()
_LIMIT = limit_param(20, MAX_PAGE_SIZE)
_FACET = {"type": "string", "maxLength": 200, "pattern": NO_NUL}
_WHEN = {"type": "string", "format": "date-time"}
# The query parameters of a search, as MessageSearch names its fields.
SEARCH_PARAMS = (
    Param(
        "q",
        'words to find (web-search syntax: "a phrase", -excluded, either OR other; English '
        "stemmed; Chinese, Japanese and Korean found inside longer runs)",
        {"type": "string", "maxLength": MAX_QUERY_CHARS, "pattern": NO_NUL},
    ),
    Param("conversation_id", "only in this conversation", {"type": "string", "format": "uuid"}),
    Param(
        "role",
        "only messages of this role",
        {"type": "string", "enum": ["", "user", "assistant", "system", "tool"]},
    ),
    Param("tool", "only messages with a call of this tool (tool-<name> or dynamic-tool)", _FACET),
    Param(
        "tool_state",
        "only messages with a tool part in this state (with tool: that tool's), e.g. output-error",
        _FACET,
    ),
    Param(
        "part_type",
        "only messages with a part of this type (file, reasoning, source-url...) or family "
        "(tool, source, data)",
        _FACET,
    ),
    Param(
        "metadata",
        'only messages whose metadata contains this JSON object, e.g. {"source": "web"}',
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": JSON_INPUT_REF},
        },
        json=True,
    ),
    Param("since", "only messages created at or after this time (with a time zone)", _WHEN),
    Param("until", "only messages created before this time (with a time zone)", _WHEN),
)


# What the document's formats say, exactly (pydantic alone would take more: a date-time as a
# number of seconds, a UUID without its dashes). ASCII digits only.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_TIME = "an RFC 3339 time with a time zone, e.g. 2026-12-06T10:00:00Z"
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_FORMATS = {
    "conversation_id": (_UUID, "a UUID"),
    "since": (_RFC3339, _TIME),
    "until": (_RFC3339, _TIME),
}


def message_search(request: Request[AppState]) -> MessageSearch:
    """The search the query string asks for; 422 naming the parameter that is wrong."""
    given: dict[str, Any] = {}
    for param in SEARCH_PARAMS:
        if param.json:
            continue
        value = request.query_params.get(param.name)
        if param.name in _FORMATS and value is not None:
            pattern, what = _FORMATS[param.name]
            if not pattern.fullmatch(value):
                raise InvalidInput(f"{param.name} must be {what}")
        if value:
            given[param.name] = value
    given["metadata"] = json_object_param(request, "metadata")
    try:
        return MessageSearch.model_validate(given, strict=False)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "search"
        raise InvalidInput(f"{where}: {error['msg']}") from exc


@endpoints.get(
    "/v1/search/messages",
    "Search the caller's messages: ranked text matches (then newest first) and filters",
    response=SearchPage,
    params=(*SEARCH_PARAMS, _LIMIT, CURSOR),
)
async def search_messages(request: Request[AppState]) -> Response:
    me = caller(request)
    search = message_search(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await messages.search_messages(
        request.state["pool"],
        user_id=me.id,
        search=search,
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
        max_bytes=request.state["settings"].app_max_page_bytes,
    )
    return record_response(page)
