"""Each endpoint declared once, beside its handler: the app's routes and its OpenAPI document
(app/openapi.py) are both built from these declarations, and there is no other way to add one.

A routes module holds ``endpoints = Endpoints()`` and decorates each handler::

    @endpoints.get("/v1/things/{thing_id:uuid}", "Get a thing", response=Thing)
    async def get_thing(request: Request[AppState]) -> Response:
        me = caller(request)  # auth="user" (the default) was checked before the call
        ...

and app/routes/__init__.py names the module. The declaration says what the document cannot
see in the handler: its models, auth (checked by the route), parameters, and the statuses and
headers it answers beyond those every endpoint of its kind answers (see ``app.openapi``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.auth import current_user, require_admin
from app.body import INT8_MAX, int_param, read_json
from app.errors import HttpError
from app.state import AppState
from dal.errors import InvalidInput
from dal.settings import Settings

Json = dict[str, Any]
Auth = Literal["none", "user", "admin"]
Handler = Callable[[Request[AppState]], Awaitable[Response]]
H = TypeVar("H", bound=Handler)
M = TypeVar("M", bound=BaseModel)

REF = "#/components/schemas/"
# Any JSON value a client may send, as the input records check it (built by app.openapi).
JSON_INPUT_REF = REF + "JsonInput"
# Text PostgreSQL can store: anything but the NUL character. A path or query string with %00 is
# refused (400) before routing, a body with \u0000 with 422.
NO_NUL = "^[^\\u0000]*$"

_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")
# Media types of files: in ``uploads``, RAW is a body that is the file itself, of any type (its
# Content-Type the file's declared type), MULTIPART a form whose field ``file`` is the file (what
# browsers send); as ``produces``, RAW is the file's own type, whatever it is.
RAW = "application/octet-stream"
MULTIPART = "multipart/form-data"
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
# What a download may be: a media type, or a range of them (image/*).
_MEDIA_RANGE = re.compile(r"[\w.+-]+/(?:[\w.+-]+|\*)")
# "{name:convertor}" in a Starlette path.
_PATH_PARAM = re.compile(r"\{(\w+):(\w+)\}")


@dataclass(frozen=True, slots=True)
class Header:
    """A header of a response: its name, what it means, and its values (always sent)."""

    name: str
    description: str
    schema: Json


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter: its name, what it means, and the values it takes."""

    name: str
    description: str
    schema: Json
    where: Literal["query", "header"] = "query"
    # The value is JSON text (the schema is that of the parsed value).
    json: bool = False

    def integer(self, request: Request[AppState]) -> int | None:
        """The request's value of this integer query parameter, within the bounds of its
        schema (its default when absent or empty); InvalidInput otherwise."""
        default: int | None = self.schema.get("default")
        minimum: int = self.schema.get("minimum", 0)
        maximum: int = self.schema.get("maximum", INT8_MAX)
        return int_param(request, self.name, default=default, minimum=minimum, maximum=maximum)

    def boolean(self, request: Request[AppState]) -> bool:
        """The request's value of this boolean query parameter: true/1, false/0, or its
        default (else false) when absent or empty; InvalidInput otherwise."""
        raw = request.query_params.get(self.name)
        if raw is None or raw == "":
            return bool(self.schema.get("default", False))
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise InvalidInput(f"{self.name} must be true or false")


@dataclass(frozen=True, slots=True)
class PathParam:
    """A path parameter that is not a UUID (``{name:str}``): its values, and the statuses its
    value alone can cause (e.g. 422 for an id over a length limit)."""

    name: str
    schema: Json
    errors: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """A response besides the success and the errors: another success (a retry's 200, a
    range's 206), an answer without a body (``body`` and ``produces`` None: a 304), or an
    error with a body or headers other than the error shape's (a 416 with Content-Range)."""

    status: int
    description: str
    body: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    # Raw bytes of this media type (or range: image/*) instead of a JSON ``body`` (RAW: the
    # file's own type, whatever it is).
    produces: str | None = None

    def __post_init__(self) -> None:
        if self.body is not None and self.produces is not None:
            raise ValueError(f"answer {self.status}: a JSON body or raw bytes, not both")
        if self.produces is not None and not _MEDIA_RANGE.fullmatch(self.produces):
            raise ValueError(f"answer {self.status}: produces {self.produces!r} is no media type")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method of one path, and everything the document says of it."""

    method: str
    # Starlette's, with convertors: "/v1/conversations/{conversation_id:uuid}".
    path: str
    handler: Handler
    summary: str
    # Checked before the handler runs (PathRoute): "user" is a user's token (401 without a
    # valid one, 403 with the admin token), "admin" the admin token (403 with a user's).
    auth: Auth = "user"
    body: type[BaseModel] | None = None
    # An empty body counts as {} (``body_of`` reads it so).
    body_optional: bool = False
    # A file instead of a JSON ``body``: the media types the body may have, RAW (the file
    # itself, of any type) and/or MULTIPART (a form with the field ``file``). The handler reads
    # ``request.stream()`` itself (``upload_type`` says which it got); the document says the
    # endpoint answers 400/408/413/415/422 as one with a body does.
    uploads: tuple[str, ...] = ()
    # What the handler checks of the body beyond its record, added to the record's schema
    # (the component of ``body``) for these settings.
    body_schema: Callable[[Json, Settings], None] | None = None
    response: type[BaseModel] | None = None
    # Raw bytes of this media type (or range: image/*) as the success instead of a JSON
    # ``response`` (RAW: the file's own type, whatever it is), their headers in ``headers``.
    produces: str | None = None
    status: int = 200
    # Headers of the success responses.
    headers: tuple[Header, ...] = ()
    answers: tuple[Answer, ...] = ()
    params: tuple[Param, ...] = ()
    path_params: tuple[PathParam, ...] = ()
    # Statuses it answers beyond those that follow from the rest of the declaration.
    errors: tuple[int, ...] = ()
    # Whether it answers 503/504 when the database is down or slow (with the error shape).
    database: bool = True
    # False only for /openapi.json itself.
    documented: bool = True

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"{self.method} {self.path}: method not one of {_METHODS}")
        declared = {p.name for p in self.path_params}
        for name, convertor in _PATH_PARAM.findall(self.path):
            if convertor != "uuid" and name not in declared:
                raise ValueError(f"{self.path}: declare the path parameter {name} (PathParam)")
        if not declared <= set(self.path_names):
            raise ValueError(f"{self.path}: path_params {declared} not all in the path")
        if "{" in _PATH_PARAM.sub("", self.path):
            raise ValueError(f"{self.path}: give every path parameter a convertor")
        where = f"{self.method} {self.path}"
        if self.uploads and (self.body is not None or self.body_optional):
            raise ValueError(f"{where}: a JSON body or uploads, not both")
        if len(set(self.uploads)) < len(self.uploads):
            raise ValueError(f"{where}: uploads {self.uploads} repeats a media type")
        if self.response is not None and self.produces is not None:
            raise ValueError(f"{where}: a JSON response or raw bytes (produces), not both")
        for media_type in self.uploads:
            # Lower case, as upload_type compares them.
            if not _MEDIA_TYPE.fullmatch(media_type) or media_type != media_type.lower():
                raise ValueError(f"{where}: uploads: {media_type!r} is no media type")
        if self.produces is not None and not _MEDIA_RANGE.fullmatch(self.produces):
            raise ValueError(f"{where}: produces {self.produces!r} is no media type")

    @property
    def path_names(self) -> tuple[str, ...]:
        """The path parameters, in order."""
        return tuple(name for name, _ in _PATH_PARAM.findall(self.path))

    @property
    def openapi_path(self) -> str:
        """The path as OpenAPI writes it: "{conversation_id}"."""
        return _PATH_PARAM.sub(r"{\1}", self.path)


class Endpoints:
    """The endpoints of one routes module, in the order they are declared."""

    def __init__(self) -> None:
        self._declared: list[Endpoint] = []

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._declared)

    def _declare(self, method: str, path: str, summary: str, options: Any) -> Callable[[H], H]:
        def declare(handler: H) -> H:
            self._declared.append(Endpoint(method, path, handler, summary, **options))
            return handler

        return declare

    def get(self, path: str, summary: str, **options: Any) -> Callable[[H], H]:
        return self._declare("GET", path, summary, options)

    def put(self, path: str, summary: str, **options: Any) -> Callable[[H], H]:
        return self._declare("PUT", path, summary, options)

    def post(self, path: str, summary: str, **options: Any) -> Callable[[H], H]:
        return self._declare("POST", path, summary, options)

    def patch(self, path: str, summary: str, **options: Any) -> Callable[[H], H]:
        return self._declare("PATCH", path, summary, options)

    def delete(self, path: str, summary: str, **options: Any) -> Callable[[H], H]:
        return self._declare("DELETE", path, summary, options)


class PathRoute(Route):
    """One route for every method of a path, each to its endpoint (HEAD to GET's), whose auth
    is checked before its handler runs: the admin token for "admin"; for "user", a user's
    token, whose user the handler reads with ``app.auth.caller``. Another method is 405 with
    ``Allow``: the path's methods, sorted."""

    def __init__(self, path: str, endpoints: Mapping[str, Endpoint]) -> None:
        by_method = dict(endpoints)
        if "GET" in by_method:
            by_method["HEAD"] = by_method["GET"]

        async def dispatch(request: Request[AppState]) -> Response:
            endpoint = by_method[request.method]
            request.scope["endpoint"] = endpoint
            if endpoint.auth == "user":
                request.scope["user"] = await current_user(request)
            elif endpoint.auth == "admin":
                await require_admin(request)
            return await endpoint.handler(request)

        super().__init__(path, dispatch, methods=list(endpoints))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            # Starlette's own Allow is in the order of a set.
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(self.methods))})
        await self.app(scope, receive, send)


async def body_of(request: Request[AppState], model: type[M]) -> M:
    """The request's body as its endpoint declares it (``body=model``, ``body_optional``):
    415 if not JSON, 400 if malformed, 422 if invalid (``app.body.read_json``). A handler that
    reads another model than its declaration names is a bug, refused on its first call."""
    endpoint: Endpoint = request.scope["endpoint"]
    if endpoint.body is not model:
        raise TypeError(
            f"{endpoint.method} {endpoint.path} declares body={endpoint.body!r} "
            f"but its handler reads {model!r}"
        )
    return await read_json(request, model, optional=endpoint.body_optional)


def upload_type(request: Request[AppState]) -> str:
    """Which of its endpoint's ``uploads`` the request's body is, by its Content-Type: MULTIPART
    for a form; a media type the endpoint names; else RAW if it takes any type (the file's
    declared type is then the Content-Type). 415 for a form where none is taken, for a type
    not taken, and for a body without a Content-Type (a file's type is declared, if only as
    application/octet-stream: an upload without one is no file)."""
    endpoint: Endpoint = request.scope["endpoint"]
    if not endpoint.uploads:
        raise TypeError(f"{endpoint.method} {endpoint.path} declares no uploads")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in endpoint.uploads:
        return media_type
    if media_type and media_type != MULTIPART and RAW in endpoint.uploads:
        return RAW
    ways = [
        "a multipart/form-data form whose field file is the file"
        if t == MULTIPART
        else "the file itself, with its Content-Type (application/octet-stream if unknown)"
        if t == RAW
        else f"a {t} file"
        for t in endpoint.uploads
    ]
    sent = media_type or "a body without Content-Type"
    raise HttpError(415, "unsupported_media_type", f"{sent} is not taken: send {' or '.join(ways)}")


def routes_of(endpoints: Iterable[Endpoint]) -> list[Route]:
    """The Starlette routes of these endpoints: one per path, in the order paths first come."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        methods = by_path.setdefault(endpoint.path, {})
        if endpoint.method in methods:
            raise ValueError(f"{endpoint.method} {endpoint.path} is declared twice")
        methods[endpoint.method] = endpoint
    return [PathRoute(path, methods) for path, methods in by_path.items()]


# --- what several routes modules declare alike -------------------------------------------------

LOCATION = Header("Location", "The URL of the new resource", {"type": "string"})
RETRY_AFTER = Header(
    "Retry-After", "Seconds to wait before retrying", {"type": "integer", "minimum": 1}
)
WWW_AUTHENTICATE = Header(
    "WWW-Authenticate", "The scheme to authenticate with: Bearer", {"type": "string"}
)

CURSOR = Param(
    "cursor",
    "next_cursor of the previous page, unchanged (another value is refused with 422)",
    # URL-safe base64 without padding; empty means the first page.
    {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
)


def limit_param(default: int, maximum: int) -> Param:
    """The page size of a list: 1 to ``maximum``."""
    return Param(
        "limit",
        f"page size, 1-{maximum} (default {default})",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    )


def walk(node: Any) -> Iterator[Json]:
    """Every dict inside a JSON schema, depth first (for ``body_schema`` hooks)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)
