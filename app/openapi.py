"""The OpenAPI 3.1 document, generated from the same pydantic models the routes use.

Request bodies are the input records' JSON schemas (validation mode) and responses the output
records' (serialization mode: what ``model_dump_json`` writes), with what pydantic cannot see
added here: the checks the routes and gateways make beyond the records (text without NUL, the
part types' required fields, at least one field in a patch, reserved metadata keys), the
ranges of query parameters, the ``If-Match`` syntax, and every status a route answers with its
headers. tests/app/test_schemathesis.py holds the app to this document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.schemas import ErrorBody, Health, TokenCreated, UserCreated
from dal.cursors import MAX_PAGE_SIZE
from dal.gateways import threads
from dal.records.conversations import (
    Conversation,
    ConversationDraft,
    ConversationPage,
    ConversationPatch,
)
from dal.records.messages import (
    PART_FIELDS,
    TOOL_FIELDS,
    Message,
    MessageDraft,
    MessagePage,
    MessagePatch,
)
from dal.records.threads import (
    CopiedThread,
    Pruned,
    SavedCheckpoint,
    Thread,
    ThreadCopy,
    ThreadHistory,
    ThreadPage,
    ThreadPrune,
    ThreadState,
    ThreadStateDraft,
)
from dal.records.users import TokenDraft, TokenList, User, UserDraft, UserPatch
from dal.settings import Settings

Auth = Literal["none", "user", "admin"]
Json = dict[str, Any]

# The largest integer a query parameter takes (int_param's default bound: PostgreSQL's int8).
_INT8_MAX = 2**63 - 1
_REF = "#/components/schemas/"
# Text PostgreSQL can store: anything but the NUL character. A path or query string with %00 is
# refused (400) before routing, a body with \u0000 with 422.
_NO_NUL = "^[^\\u0000]*$"


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter: its name, what it means, and the values it takes."""

    name: str
    description: str
    schema: Json
    where: Literal["query", "header"] = "query"
    # The value is JSON text (the schema is that of the parsed value).
    json: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    auth: Auth = "user"
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    # Another success status with the same response body, and what it means.
    also: tuple[int, str] | None = None
    # Headers of the success responses (names in _HEADERS).
    headers: tuple[str, ...] = ()


def _limit(default: int, maximum: int) -> Param:
    return Param(
        "limit",
        f"page size, 1-{maximum} (default {default})",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    )


_CURSOR = Param(
    "cursor",
    "next_cursor of the previous page, unchanged (another value is refused with 422)",
    # URL-safe base64 without padding; empty means the first page.
    {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
)
_SEQ = {"type": "integer", "minimum": 0, "maximum": _INT8_MAX}
_NS = Param(
    "checkpoint_ns",
    'checkpoint namespace (default "": the root graph; "node:task_id" for a subgraph)',
    {"type": "string", "default": "", "pattern": _NO_NUL},
)
# `"3"`, `3`, `W/"3"` (a conversation's version, at most 9 digits) or `*` (any version).
IF_MATCH_PATTERN = r'^[ \t]*(\*|(W/)?"*[0-9]{1,9}"*)[ \t]*$'
_IF_MATCH = Param(
    "If-Match",
    'the version the change applies to, as the ETag gives it (e.g. "3"); 412 if the '
    "conversation is at another version, 400 if the header is not a version",
    {"type": "string", "pattern": IF_MATCH_PATTERN},
    "header",
)

_CONV = "/v1/conversations/{conversation_id}"
_MSG = _CONV + "/messages/{message_id}"
_THREAD = "/v1/threads/{thread_id}"
# Path parameters that are any path segment (the others are UUIDs): LangGraph's ids.
_TEXT_PATH: dict[str, Json] = {
    "thread_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": threads.MAX_THREAD_ID_BYTES,
        "pattern": "^[^/\\u0000]+$",
        "description": f"any text of 1 to {threads.MAX_THREAD_ID_BYTES} bytes (UTF-8), "
        "percent-encoded",
    },
    "checkpoint_id": {"type": "string", "minLength": 1, "pattern": "^[^/\\u0000]+$"},
}
# Request bodies required on POST (the others may be empty: {} is assumed).
_REQUIRED_POST_BODIES = (MessageDraft, UserDraft, ThreadCopy, ThreadPrune)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/health",
        "Database reachable and migrations current",
        "none",
        None,
        Health,
    ),
    Operation(
        "post",
        "/v1/users",
        "Create a user and their first token",
        "admin",
        UserDraft,
        UserCreated,
        201,
        errors=(409,),
        headers=("Location",),
    ),
    Operation("get", "/v1/users/{user_id}", "Get a user", "admin", None, User),
    Operation(
        "patch",
        "/v1/users/{user_id}",
        "Update a user's profile",
        "admin",
        UserPatch,
        User,
    ),
    Operation(
        "post",
        "/v1/users/{user_id}/deactivate",
        "Deactivate a user (tokens stop working)",
        "admin",
        None,
        User,
    ),
    Operation("get", "/v1/me", "The caller", response=User),
    Operation("patch", "/v1/me", "Update the caller's profile", body=UserPatch, response=User),
    Operation(
        "post",
        "/v1/tokens",
        "Issue a new token for the caller",
        body=TokenDraft,
        response=TokenCreated,
        status=201,
        errors=(409,),  # too_many_tokens: APP_MAX_TOKENS_PER_USER
    ),
    Operation(
        "get",
        "/v1/tokens",
        "The caller's active tokens, newest first (no secrets): what there is to revoke",
        response=TokenList,
    ),
    Operation("delete", "/v1/tokens/{token_id}", "Revoke one of the caller's tokens", status=204),
    Operation(
        "post",
        "/v1/conversations",
        "Create a conversation (201); the same request again with its id returns it (200)",
        body=ConversationDraft,
        response=Conversation,
        status=201,
        errors=(409,),  # the id with other content (idempotency_mismatch), a thread taken
        also=(200, "Already created (a retry of this id): the conversation as it is now"),
        headers=("Location", "ETag"),
    ),
    Operation(
        "get",
        "/v1/conversations",
        "List conversations, most recent activity first",
        response=ConversationPage,
        params=(_limit(50, MAX_PAGE_SIZE), _CURSOR),
    ),
    Operation(
        "get",
        _CONV,
        "Get a conversation (ETag: its version)",
        response=Conversation,
        headers=("ETag",),
    ),
    Operation(
        "patch",
        _CONV,
        "Update a conversation (If-Match: version -> 412 when stale)",
        body=ConversationPatch,
        response=Conversation,
        params=(_IF_MATCH,),
        errors=(409, 412),  # 409: the thread serves another conversation
        headers=("ETag",),
    ),
    Operation("delete", _CONV, "Delete a conversation and its messages", status=204),
    Operation(
        "post",
        _CONV + "/messages",
        "Append a message (201); a retried id returns the stored message (200)",
        body=MessageDraft,
        response=Message,
        status=201,
        errors=(409,),
        also=(200, "Already stored (a retry of this id): the stored message"),
        headers=("Location",),
    ),
    Operation(
        "get",
        _CONV + "/messages",
        "A page of messages, oldest first (the newest page unless before or after is given)",
        response=MessagePage,
        params=(
            _limit(50, MAX_PAGE_SIZE),
            Param("before", "the page just before this seq (not with after)", _SEQ),
            Param("after", "the page just after this seq (not with before)", _SEQ),
        ),
    ),
    Operation("get", _MSG, "Get a message", response=Message),
    Operation(
        "patch",
        _MSG,
        "Edit a message: replace parts, append parts while streaming, metadata, status",
        body=MessagePatch,
        response=Message,
        errors=(409,),
    ),
    Operation("delete", _MSG, "Delete a message", status=204),
    Operation(
        "get",
        "/v1/threads",
        "List the caller's agent threads, most recently updated first",
        response=ThreadPage,
        params=(_limit(50, MAX_PAGE_SIZE), _CURSOR),
    ),
    Operation("get", _THREAD, "Get a thread", response=Thread),
    Operation("delete", _THREAD, "Delete a thread and all its checkpoints", status=204),
    Operation(
        "get",
        _THREAD + "/state",
        "The thread's newest checkpoint, values and pending writes as JSON",
        response=ThreadState,
        params=(_NS,),
    ),
    Operation(
        "put",
        _THREAD + "/state",
        "Save JSON state as the thread's new newest checkpoint (the thread is created if new)",
        body=ThreadStateDraft,
        response=SavedCheckpoint,
        status=201,
        errors=(409,),
    ),
    Operation(
        "get",
        _THREAD + "/history",
        "The thread's checkpoints, newest first, as JSON",
        response=ThreadHistory,
        params=(
            _limit(20, threads.MAX_HISTORY),
            Param(
                "before",
                "only checkpoints older than this checkpoint id",
                {"type": "string", "pattern": _NO_NUL},
            ),
            Param(
                "metadata",
                'only checkpoints whose metadata contains this JSON object, e.g. {"step": 2}',
                {
                    "type": "object",
                    "propertyNames": {"pattern": _NO_NUL},
                    "additionalProperties": {"$ref": _REF + "JsonInput"},
                },
                json=True,
            ),
            _NS,
        ),
    ),
    Operation(
        "get",
        _THREAD + "/checkpoints/{checkpoint_id}",
        "One checkpoint of the thread as JSON",
        response=ThreadState,
        params=(_NS,),
    ),
    Operation(
        "post",
        _THREAD + "/copy",
        "Copy the thread's checkpoints (all, or the newest of each namespace) to a new thread",
        body=ThreadCopy,
        response=CopiedThread,
        status=201,
        errors=(409,),
    ),
    Operation(
        "post",
        _THREAD + "/prune",
        "Delete the thread's checkpoints: all, or all but the newest of each namespace",
        body=ThreadPrune,
        response=Pruned,
        errors=(409,),
    ),
)

_ERRORS = {
    400: "Malformed: the path or query string (not UTF-8 once percent-decoded, or with NUL), "
    "the JSON body, or a header (If-Match)",
    401: "Missing or invalid token",
    404: "Not found (or another user's)",
    409: "Conflict",
    408: "The body did not arrive in time (APP_BODY_TIMEOUT; answered by the server)",
    412: "Stale version: the conversation is at another version than If-Match says",
    413: "Body too large",
    415: "Body is not JSON (send Content-Type: application/json)",
    422: "Validation error",
    503: "Database unavailable, or its migrations are not applied: retry after Retry-After",
    504: "The database did not answer in time",
}
_FORBIDDEN = {
    "user": "The admin token acts for no user: use a user's token",
    "admin": "Only the admin token may do this (a user's token is refused)",
}

_HEADERS: dict[str, Json] = {
    "Location": {
        "description": "The URL of the new resource",
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": 'The conversation\'s version, e.g. "3": send it back in If-Match',
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with: Bearer",
        "required": True,
        "schema": {"type": "string"},
    },
}
_ERROR_HEADERS = {401: ("WWW-Authenticate",), 503: ("Retry-After",)}

# --- request bodies: what the routes check beyond the records ---------------------------------


def _json_input(settings: Settings) -> Json:
    """Any JSON value a client may send (JsonValue of the input records), as dal.records checks
    it. JSON Schema has one number type, whose integers include 1e300 (which Mnemo takes, as a
    double) as well as 10**30 written out (which it refuses): numbers are left unbounded here
    and the 64-bit rule for integers is stated in words. It cannot bound nesting either."""
    depth = getattr(settings, "app_max_json_depth", None)
    nesting = f"; objects and arrays nest at most {depth} levels deep" if depth else ""
    return {
        "description": "Any JSON value. Text (strings and keys) may not contain the NUL "
        "character; a number written as an integer must fit in 64 bits, other numbers are "
        f"doubles{nesting}",
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "string", "pattern": _NO_NUL},
            {"type": "number"},
            {"type": "array", "items": {"$ref": _REF + "JsonInput"}},
            {
                "type": "object",
                "propertyNames": {"pattern": _NO_NUL},
                "additionalProperties": {"$ref": _REF + "JsonInput"},
            },
        ],
    }


def _part_schema() -> Json:
    """A message part as dal.records checks it: a non-empty string ``type`` and, for the types
    it knows, their required string fields (a ``data-*`` part needs ``data``)."""

    def needs(fields: tuple[str, ...]) -> Json:
        return {"required": list(fields), "properties": {f: {"type": "string"} for f in fields}}

    rules: list[Json] = [
        {"if": {"properties": {"type": {"const": kind}}}, "then": needs(fields)}
        for kind, fields in PART_FIELDS.items()
        if fields
    ]
    rules.append(
        {"if": {"properties": {"type": {"pattern": "^tool-[\\s\\S]"}}}, "then": needs(TOOL_FIELDS)}
    )
    rules.append(
        {
            "if": {"properties": {"type": {"pattern": "^data-[\\s\\S]"}}},
            "then": {"required": ["data"]},
        }
    )
    return {
        "type": "object",
        "description": "A UI message part (Vercel AI SDK): its type, then that type's fields; "
        "every key is kept as given",
        "required": ["type"],
        "properties": {"type": {"type": "string", "minLength": 1, "pattern": _NO_NUL}},
        "propertyNames": {"pattern": _NO_NUL},
        "additionalProperties": {"$ref": _REF + "JsonInput"},
        "allOf": rules,
    }


def _walk(node: Any) -> Iterator[Json]:
    """Every dict inside a JSON schema, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _strings_without_nul(schema: Json) -> None:
    """Every plain string and object key of an input schema refuses NUL."""
    for node in list(_walk(schema)):
        plain = not {"pattern", "format", "enum", "const"} & set(node)
        if node.get("type") == "string" and plain:
            node["pattern"] = _NO_NUL
        if node.get("type") == "object" and node.get("additionalProperties", False) is not False:
            node.setdefault("propertyNames", {}).setdefault("pattern", _NO_NUL)


def _refuses_null(model: type[BaseModel], field: str) -> bool:
    """Whether the record refuses ``{field: null}`` (a patch field that may be left out but
    not cleared), whatever its type says: asked of the validator itself."""
    try:
        model.model_validate({field: None})
    except ValidationError as exc:
        return any(error["loc"][:1] == (field,) for error in exc.errors())
    return False


def _without_null_where_refused(models: set[type[BaseModel]], defs: dict[str, Json]) -> None:
    for model in models:
        for field, prop in defs[model.__name__].get("properties", {}).items():
            options = prop.get("anyOf", [])
            if {"type": "null"} in options and _refuses_null(model, field):
                options.remove({"type": "null"})
                prop.pop("default", None)
                if len(options) == 1:
                    prop.update(options.pop())
                    del prop["anyOf"]


def _refine_inputs(defs: dict[str, Json], settings: Settings) -> None:
    """Add to the input records' schemas what their validators check in code."""
    for node in _walk(defs):
        if node.get("$ref") == _REF + "JsonValue":
            node["$ref"] = _REF + "JsonInput"
    defs.pop("JsonValue", None)
    for schema in defs.values():
        _strings_without_nul(schema)
    part = _part_schema()
    for name in ("MessageDraft", "MessagePatch"):
        for key in ("parts", "append_parts"):
            prop = defs[name]["properties"].get(key)
            for node in _walk(prop):
                if node.get("type") == "array":
                    node["items"] = part
    for model in (UserPatch, ConversationPatch, MessagePatch):
        # An empty patch would change nothing but the version: 422.
        defs[model.__name__]["minProperties"] = 1
    username = defs["UserDraft"]["properties"]["username"]
    # Stored trimmed and lower-cased.
    username["pattern"] = r"^\s*[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\s*$"
    username["description"] = (
        "1-64 letters, digits, '_', '.', '-', starting with a letter or digit; "
        "case-insensitive (stored lower-cased)"
    )
    state_metadata = defs["ThreadStateDraft"]["properties"]["metadata"]
    state_metadata["propertyNames"] = {
        "pattern": _NO_NUL,
        "not": {"enum": list(threads.RESERVED_METADATA)},
    }
    state_metadata["description"] = (
        f"the checkpoint's metadata; {', '.join(threads.RESERVED_METADATA)} are set by the server"
    )
    defs["JsonInput"] = _json_input(settings)
    # The records allow longer lifetimes than the server's setting.
    max_expires_in = getattr(settings, "app_max_token_expires_in", None)
    for name, key in (("TokenDraft", "expires_in"), ("UserDraft", "token_expires_in")):
        prop = defs[name]["properties"].get(key)
        for node in _walk(prop):
            if node.get("type") == "integer" and max_expires_in is not None:
                node["maximum"] = min(node.get("maximum", max_expires_in), max_expires_in)


# --- the document ---------------------------------------------------------------------------


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF + model.__name__}


def _json(model: type[BaseModel]) -> Json:
    return {"application/json": {"schema": _ref(model)}}


def _response(description: str, model: type[BaseModel] | None, headers: tuple[str, ...]) -> Json:
    out: Json = {"description": description}
    if headers:
        out["headers"] = {name: _HEADERS[name] for name in headers}
    if model is not None:
        out["content"] = _json(model)
    return out


def _parameters(op: Operation) -> list[Json]:
    params: list[Json] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _TEXT_PATH.get(name, {"type": "string", "format": "uuid"}),
        }
        for name in (part[1:-1] for part in op.path.split("/") if part.startswith("{"))
    ]
    for param in op.params:
        where = {"name": param.name, "in": param.where, "description": param.description}
        if param.json:
            params.append({**where, "content": {"application/json": {"schema": param.schema}}})
        elif param.where == "query":
            # Scalars; a list or object sent in their place comes as one value (explode: false
            # puts it in this parameter, not in parameters of other names) and is refused.
            params.append({**where, "schema": param.schema, "style": "form", "explode": False})
        else:
            params.append({**where, "schema": param.schema})
    return params


def _error_statuses(op: Operation) -> set[int]:
    # Any path or query string may be malformed (400, before routing).
    codes = set(op.errors) | {400}
    if op.path != "/health":
        # Every route but /health reads the database: down -> 503, too slow -> 504.
        codes |= {503, 504}
    if op.auth != "none":
        codes |= {401, 403}
    if "{" in op.path:
        codes |= {404}
    if "{thread_id}" in op.path:
        codes |= {422}  # a thread id over the limit
    if op.body is not None:
        codes |= {400, 408, 413, 415, 422}
    if any(p.where == "query" for p in op.params):
        codes |= {422}
    return codes


def _operation(op: Operation, errors: dict[int, str]) -> Json:
    responses: Json = {str(op.status): _response("OK", op.response, op.headers)}
    if op.also is not None:
        status, description = op.also
        responses[str(status)] = _response(description, op.response, op.headers)
    if op.path == "/health":
        responses["503"] = _response(_ERRORS[503], Health, ("Retry-After",))
    for code in sorted(_error_statuses(op)):
        description = _FORBIDDEN[op.auth] if code == 403 else errors[code]
        responses[str(code)] = _response(description, ErrorBody, _ERROR_HEADERS.get(code, ()))
    out: Json = {"summary": op.summary, "parameters": _parameters(op), "responses": responses}
    if op.body is not None:
        out["requestBody"] = {
            "required": op.method != "post" or op.body in _REQUIRED_POST_BODIES,
            "content": _json(op.body),
        }
    out["security"] = [] if op.auth == "none" else [{"bearer": []}]
    return out


def _schemas(models: set[type[BaseModel]], mode: Literal["validation", "serialization"]) -> Json:
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schema = models_json_schema([(m, mode) for m in ordered], ref_template=_REF + "{model}")
    defs: Json = schema.get("$defs", {})
    return defs


def _error_descriptions(settings: Settings) -> dict[int, str]:
    errors = dict(_ERRORS)
    errors[413] = (
        f"Body over APP_MAX_BODY_BYTES ({settings.app_max_body_bytes} bytes), or a message "
        "over its size limits (APP_MAX_MESSAGE_BYTES, APP_MAX_MESSAGE_PARTS)"
    )
    return errors


def _always_written(defs: dict[str, Json]) -> None:
    """Responses are records dumped whole: every property is there, defaults too. (Error
    bodies are built by app.errors, which leaves ``details`` out when there are none.)"""
    for name, schema in defs.items():
        if name != "ErrorInfo" and schema.get("type") == "object" and "properties" in schema:
            schema["required"] = list(schema["properties"])


def build_openapi(settings: Settings | None = None) -> Json:
    """The whole document, with the limits of these settings; models become components (input
    and output shapes apart)."""
    settings = settings or Settings()
    inputs: set[type[BaseModel]] = {op.body for op in OPERATIONS if op.body is not None}
    outputs: set[type[BaseModel]] = {ErrorBody, Health}
    outputs |= {op.response for op in OPERATIONS if op.response is not None}
    assert not inputs & outputs, "a record is either a request body or a response"
    input_defs = _schemas(inputs, "validation")
    _without_null_where_refused(inputs, input_defs)
    _refine_inputs(input_defs, settings)
    output_defs = _schemas(outputs, "serialization")
    _always_written(output_defs)
    errors = _error_descriptions(settings)
    paths: dict[str, Json] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, errors)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mnemo",
            "version": "0.1.0",
            "description": "Memory for AI agents and chat products: users, conversations, "
            "messages (Vercel AI SDK UI message parts), agent threads and their checkpoints "
            "(LangGraph's, or JSON state), on PostgreSQL.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted({**output_defs, **input_defs}.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_route(settings: Settings) -> Route:
    """``GET /openapi.json``: the document of an app with these settings, built on the first
    request (about 20 ms: most apps, in tests, are never asked) and kept."""
    built: list[bytes] = []

    async def openapi(request: Request) -> Response:
        if not built:
            built.append(orjson.dumps(build_openapi(settings)))
        return Response(built[0], media_type="application/json")

    return Route("/openapi.json", openapi, methods=["GET"])
