"""The OpenAPI 3.1 document, built from the endpoints' declarations (app.endpoints) and the
same pydantic models the routes use; a function of the settings alone (no database).

Request bodies are the input records' JSON schemas (validation mode) and responses the output
records' (serialization mode: what ``model_dump_json`` writes), with what pydantic cannot see
added here (text without NUL, any JSON value as the records check it, a patch's non-empty
rule, fields that refuse null) and by each endpoint's ``body_schema`` (what its route checks
beyond the record). Every endpoint answers the statuses that follow from its declaration (400
for a malformed path or query string; 401/403 with auth; 404 with path parameters; 503/504 when
it reads the database; 400/408/413/415/422 with a body or an upload; 422 with query parameters)
plus those it declares. tests/app/test_schemathesis.py holds the app to this document.

Files are bytes, not JSON: an upload's body (``Endpoint.uploads``) is the file itself or a
multipart form whose field ``file`` is the file, and a download (``produces``, or an Answer's)
is the file itself; their schemas are ``binary``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Literal

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from app import routes
from app.endpoints import (
    JSON_INPUT_REF,
    MULTIPART,
    NO_NUL,
    RAW,
    REF,
    RETRY_AFTER,
    WWW_AUTHENTICATE,
    Endpoint,
    Header,
    Json,
    walk,
)
from app.schemas import ErrorBody
from app.state import AppState
from dal.records.base import Patch
from dal.settings import Settings

_ERRORS = {
    400: "Malformed: the path or query string (not UTF-8 once percent-decoded, or with NUL), "
    "the JSON body, or a header (If-Match)",
    401: "Missing or invalid token",
    404: "Not found (or another user's)",
    409: "Conflict",
    408: "The body did not arrive in time (APP_BODY_TIMEOUT, longer while it keeps "
    "APP_MIN_BODY_RATE; answered by the server)",
    412: "Stale version: the conversation is at another version than If-Match says",
    413: "Body too large",
    415: "Body is not JSON (send Content-Type: application/json)",
    422: "Validation error",
    503: "Database unavailable, or its migrations are not applied: retry after Retry-After",
    504: "The database did not answer in time",
}
_FORBIDDEN = {
    "user": (
        "The admin token acts for no user (use a user's token), or the caller's role in the "
        "conversation may not do this (code forbidden)"
    ),
    "admin": "Only the admin token may do this (a user's token is refused)",
    "none": (
        "Refused: sign-up is closed (code signup_closed), or the admin token was sent where a "
        "user's session is meant"
    ),
}
_ERROR_HEADERS = {401: (WWW_AUTHENTICATE,), 503: (RETRY_AFTER,)}
_UUID: Json = {"type": "string", "format": "uuid"}

# --- request bodies: what the records check in code -------------------------------------------


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
            {"type": "string", "pattern": NO_NUL},
            {"type": "number"},
            {"type": "array", "items": {"$ref": JSON_INPUT_REF}},
            {
                "type": "object",
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": {"$ref": JSON_INPUT_REF},
            },
        ],
    }


def _strings_without_nul(schema: Json) -> None:
    """Every plain string and object key of an input schema refuses NUL."""
    for node in list(walk(schema)):
        plain = not {"pattern", "format", "enum", "const"} & set(node)
        if node.get("type") == "string" and plain:
            node["pattern"] = NO_NUL
        if node.get("type") == "object" and node.get("additionalProperties", False) is not False:
            node.setdefault("propertyNames", {}).setdefault("pattern", NO_NUL)


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


def _refine_inputs(
    endpoints: Iterable[Endpoint], defs: dict[str, Json], settings: Settings
) -> None:
    """Add to the input records' schemas what their validators and the routes check in code."""
    for node in walk(defs):
        if node.get("$ref") == REF + "JsonValue":
            node["$ref"] = JSON_INPUT_REF
    defs.pop("JsonValue", None)
    for schema in defs.values():
        _strings_without_nul(schema)
    for endpoint in endpoints:
        if endpoint.body is None:
            continue
        if issubclass(endpoint.body, Patch):
            # An empty patch would change nothing but the version: 422.
            defs[endpoint.body.__name__]["minProperties"] = 1
        if endpoint.body_schema is not None:
            endpoint.body_schema(defs[endpoint.body.__name__], settings)
    defs["JsonInput"] = _json_input(settings)


# --- the document ---------------------------------------------------------------------------


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF + model.__name__}


def _json(model: type[BaseModel]) -> Json:
    return {"application/json": {"schema": _ref(model)}}


def binary(media_type: str) -> Json:
    """The schema of an uploaded file of this media type (RAW: of any type), a whole body: no
    JSON type (bytes are none), 3.1's ``contentMediaType`` (left out for a range such as
    image/*), and ``format: binary``, 3.0's spelling, in 3.1's format registry, by which tools
    (schemathesis among them) know to send bytes."""
    schema: Json = {"format": "binary"}
    if "*" not in media_type:
        schema["contentMediaType"] = media_type
    return schema


# A form's field holding a file: a string of octets (a part of the form, not a JSON value).
_FILE_FIELD: Json = {"type": "string", **binary(RAW)}


def _files(media_type: str) -> Json:
    """A download's content: RAW is the file's own type, whichever it is (``*/*``). No schema,
    as 3.1 models bytes: a validator that reads one would parse a JSON file, or a range of it,
    as JSON and hold it to the schema of a string."""
    return {"*/*" if media_type == RAW else media_type: {}}


def _response(
    description: str,
    model: type[BaseModel] | None,
    headers: tuple[Header, ...],
    produces: str | None = None,
) -> Json:
    out: Json = {"description": description}
    if headers:
        out["headers"] = {
            h.name: {"description": h.description, "required": True, "schema": h.schema}
            for h in headers
        }
    if model is not None:
        out["content"] = _json(model)
    elif produces is not None:
        out["content"] = _files(produces)
    return out


def _upload(endpoint: Endpoint) -> Json:
    """The request body of an endpoint that takes a file: the file itself (RAW: documented as
    application/octet-stream, which any client can send, though any Content-Type is taken), or
    a form whose field ``file`` is the file."""
    content: Json = {}
    for media_type in endpoint.uploads:
        if media_type == MULTIPART:
            form = {"type": "object", "properties": {"file": _FILE_FIELD}, "required": ["file"]}
            content[MULTIPART] = {"schema": form}
        else:
            content[media_type] = {"schema": binary(media_type)}
    ways = []
    if RAW in endpoint.uploads:
        ways.append("the file itself, of any type (its Content-Type: the file's)")
    elif set(endpoint.uploads) - {MULTIPART}:
        ways.append("the file itself")
    if MULTIPART in endpoint.uploads:
        ways.append("a multipart/form-data form whose field `file` is the file")
    return {"required": True, "description": "The file: " + "; or ".join(ways), "content": content}


def _parameters(endpoint: Endpoint) -> list[Json]:
    declared = {p.name: p.schema for p in endpoint.path_params}
    params: list[Json] = [
        {"name": name, "in": "path", "required": True, "schema": declared.get(name, _UUID)}
        for name in endpoint.path_names
    ]
    for param in endpoint.params:
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


def _error_statuses(endpoint: Endpoint) -> set[int]:
    # Any path or query string may be malformed (400, before routing).
    codes = set(endpoint.errors) | {400}
    if endpoint.database:
        codes |= {503, 504}  # down, too slow
    if endpoint.auth != "none":
        codes |= {401, 403}
    if endpoint.path_names:
        codes |= {404}
    for param in endpoint.path_params:
        codes |= set(param.errors)
    if endpoint.body is not None or endpoint.uploads:
        codes |= {400, 408, 413, 415, 422}
    if any(p.where == "query" for p in endpoint.params):
        codes |= {422}
    return codes


def _operation(endpoint: Endpoint, errors: dict[int, str]) -> Json:
    responses: Json = {
        str(endpoint.status): _response(
            "OK", endpoint.response, endpoint.headers, endpoint.produces
        )
    }
    for answer in endpoint.answers:
        responses[str(answer.status)] = _response(
            answer.description, answer.body, answer.headers, answer.produces
        )
    if endpoint.uploads:
        errors = {**errors, **_upload_errors(endpoint)}
    for code in sorted(_error_statuses(endpoint)):
        if str(code) in responses:
            continue
        if code == 403:
            description = _FORBIDDEN[endpoint.auth]
        else:
            description = errors.get(code) or HTTPStatus(code).phrase
        responses[str(code)] = _response(description, ErrorBody, _ERROR_HEADERS.get(code, ()))
    out: Json = {
        "summary": endpoint.summary,
        "parameters": _parameters(endpoint),
        "responses": responses,
    }
    if endpoint.body is not None:
        out["requestBody"] = {
            "required": not endpoint.body_optional,
            "content": _json(endpoint.body),
        }
    elif endpoint.uploads:
        out["requestBody"] = _upload(endpoint)
    out["security"] = [] if endpoint.auth == "none" else [{"bearer": []}]
    return out


def _schemas(models: set[type[BaseModel]], mode: Literal["validation", "serialization"]) -> Json:
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schema = models_json_schema([(m, mode) for m in ordered], ref_template=REF + "{model}")
    defs: Json = schema.get("$defs", {})
    return defs


def _error_descriptions(settings: Settings) -> dict[int, str]:
    errors = dict(_ERRORS)
    errors[413] = (
        f"Body over APP_MAX_BODY_BYTES ({settings.app_max_body_bytes} bytes), or a message "
        "over its size limits (APP_MAX_MESSAGE_BYTES, APP_MAX_MESSAGE_PARTS)"
    )
    return errors


def _upload_errors(endpoint: Endpoint) -> dict[int, str]:
    """What the body's statuses mean for an upload (an endpoint may say more with an Answer:
    which limit its 413 is)."""
    accepted = ["any but a form (the file itself)" if t == RAW else t for t in endpoint.uploads]
    return {
        400: "Malformed: the path or query string (not UTF-8 once percent-decoded, or with NUL), "
        "a header, or the multipart form",
        413: "The file is too large",
        415: "The body has no Content-Type, or one this does not take (it takes "
        + ", ".join(accepted)
        + ")",
        422: "Validation error (a form without its `file` field...)",
    }


def _always_written(defs: dict[str, Json]) -> None:
    """Responses are records dumped whole: every property is there, defaults too. (Error
    bodies are built by app.errors, which leaves ``details`` out when there are none.)"""
    for name, schema in defs.items():
        if name != "ErrorInfo" and schema.get("type") == "object" and "properties" in schema:
            schema["required"] = list(schema["properties"])


def build_openapi(
    settings: Settings | None = None, endpoints: Iterable[Endpoint] | None = None
) -> Json:
    """The whole document of these endpoints (by default the app's: app.routes.ENDPOINTS),
    with the limits of these settings; models become components (input and output shapes
    apart)."""
    settings = settings or Settings()
    documented = [e for e in (routes.ENDPOINTS if endpoints is None else endpoints) if e.documented]
    inputs: set[type[BaseModel]] = {e.body for e in documented if e.body is not None}
    outputs: set[type[BaseModel]] = {ErrorBody}
    outputs |= {e.response for e in documented if e.response is not None}
    outputs |= {a.body for e in documented for a in e.answers if a.body is not None}
    assert not inputs & outputs, "a record is either a request body or a response"
    input_defs = _schemas(inputs, "validation")
    _without_null_where_refused(inputs, input_defs)
    _refine_inputs(documented, input_defs, settings)
    output_defs = _schemas(outputs, "serialization")
    _always_written(output_defs)
    errors = _error_descriptions(settings)
    paths: dict[str, Json] = {}
    for endpoint in documented:
        paths.setdefault(endpoint.openapi_path, {})[endpoint.method.lower()] = _operation(
            endpoint, errors
        )
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


def openapi_endpoint(settings: Settings, endpoints: Iterable[Endpoint] | None = None) -> Endpoint:
    """``GET /openapi.json``: the document of an app with these settings (and these endpoints,
    by default the app's), built on the first request (about 20 ms: most apps, in tests, are
    never asked) and kept."""
    built: list[bytes] = []

    async def openapi(request: Request[AppState]) -> Response:
        if not built:
            built.append(orjson.dumps(build_openapi(settings, endpoints)))
        return Response(built[0], media_type="application/json")

    return Endpoint(
        "GET",
        "/openapi.json",
        openapi,
        "This document",
        auth="none",
        database=False,
        documented=False,
    )
