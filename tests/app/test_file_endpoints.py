"""Endpoints that take or give files (``Endpoint.uploads``, ``produces``, an Answer's
``produces``): their declarations, their OpenAPI document, and schemathesis over them.

A small app of its own, built as the real one is (declarations, the error handlers, the
router), holds files in memory: an upload (the file itself or a multipart form) and a download
with ETag, If-None-Match (304), Range (206, 416). Its document is valid OpenAPI 3.1 and the
engine of tests/app/test_schemathesis.py, with every check, finds nothing wrong with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from pydantic import BaseModel, ConfigDict
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from app.endpoints import (
    MULTIPART,
    RAW,
    Answer,
    Endpoint,
    Endpoints,
    Header,
    Param,
    routes_of,
    upload_type,
)
from app.errors import EXCEPTION_HANDLERS, HttpError, error_response
from app.middleware import MnemoRouter, RequestTargetCheck
from app.openapi import build_openapi, openapi_endpoint
from app.responses import record_response
from app.schemas import ErrorBody
from dal.errors import InvalidInput, NotFound
from dal.settings import Settings
from tests.app.conftest import Json, TestClient, assert_error
from tests.app.test_schemathesis import _ACCEPTED, Run, _report, _run_engine

# Settings of an app that never connects: this one has no database.
_NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


class StoredFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: uuid.UUID
    media_type: str
    size: int
    sha256: str


ETAG = Header(
    "ETag", "The file's SHA-256, quoted", {"type": "string", "pattern": '^"[0-9a-f]{64}"$'}
)
CONTENT_RANGE = Header(
    "Content-Range",
    "The bytes sent: first-last/size",
    {"type": "string", "pattern": r"^bytes \d+-\d+/\d+$"},
)
UNSATISFIED = Header(
    "Content-Range", "The file's size: */size", {"type": "string", "pattern": r"^bytes \*/\d+$"}
)
# Any value: a Range or an If-None-Match the server does not understand is ignored (RFC 9110),
# so a pattern would make schemathesis expect refusals that never come.
RANGE = Param(
    "Range", "bytes=first-last, first- or -suffix (one range)", {"type": "string"}, "header"
)
IF_NONE_MATCH = Param("If-None-Match", "ETags the client holds", {"type": "string"}, "header")

files = Endpoints()


@files.post(
    "/v1/files",
    "Upload a file",
    auth="none",
    database=False,
    uploads=(RAW, MULTIPART),
    response=StoredFile,
    status=201,
)
async def upload(request: Request[Any]) -> Response:
    kind = upload_type(request)
    limit = request.state["settings"].app_max_attachment_bytes
    digest, size = hashlib.sha256(), 0
    data = bytearray()

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "file_too_large", f"the file is over {limit} bytes")
        digest.update(chunk)
        data.extend(chunk)

    if kind == MULTIPART:
        # Closed at the end of the block: the form's files are temporary files.
        async with request.form(max_files=1, max_fields=16) as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise InvalidInput("the form has no file in its field `file`")
            media_type = file.content_type or RAW
            while chunk := await file.read(65536):
                take(chunk)
    else:
        media_type = request.headers["content-type"]
        async for chunk in request.stream():
            take(chunk)
    stored = StoredFile(
        id=uuid.uuid4(), media_type=media_type, size=size, sha256=digest.hexdigest()
    )
    request.state["files"][stored.id] = (stored, bytes(data))
    return record_response(stored, 201)


_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


def _range(value: str | None, size: int) -> tuple[int, int] | None:
    """The one range of a Range header, clipped to the file (None: the whole file); 416 if it
    starts past the end."""
    match = _RANGE.fullmatch(value or "")
    if not match or match.groups() == ("", ""):
        return None  # not understood: ignored
    first, last = match.groups()
    if not first:
        if int(last) == 0:
            raise _Unsatisfiable(size)
        return max(size - int(last), 0), size - 1
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise _Unsatisfiable(size)
    return int(first), min(int(last), size - 1) if last else size - 1


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


@files.get(
    "/v1/files/{file_id:uuid}",
    "Download a file",
    auth="none",
    database=False,
    produces=RAW,
    headers=(ETAG,),
    params=(IF_NONE_MATCH, RANGE),
    answers=(
        Answer(206, "The range asked for", headers=(ETAG, CONTENT_RANGE), produces=RAW),
        Answer(304, "Not modified: the client's copy is this one", headers=(ETAG,)),
        Answer(416, "The range starts past the end", ErrorBody, (UNSATISFIED,)),
    ),
)
async def download(request: Request[Any]) -> Response:
    found = request.state["files"].get(request.path_params["file_id"])
    if found is None:
        raise NotFound("no such file")
    stored, data = found
    etag = f'"{stored.sha256}"'
    held = request.headers.get("if-none-match", "")
    if held.strip() == "*" or etag in (tag.strip() for tag in held.split(",")):
        return Response(status_code=304, headers={"ETag": etag})
    try:
        part = _range(request.headers.get("range"), stored.size)
    except _Unsatisfiable as exc:
        return error_response(
            416,
            "range_not_satisfiable",
            "the range starts past the end of the file",
            headers={"Content-Range": f"bytes */{exc.size}"},
        )
    if part is None:
        return Response(data, media_type=stored.media_type, headers={"ETag": etag})
    first, last = part
    return Response(
        data[first : last + 1],
        206,
        media_type=stored.media_type,
        headers={"ETag": etag, "Content-Range": f"bytes {first}-{last}/{stored.size}"},
    )


def _settings(**changes: Any) -> Settings:
    return Settings(database_url=_NO_DATABASE, **changes)


def files_app(settings: Settings) -> Starlette:
    """The app of ``files``, as create_app builds the real one; its files live in its state."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"settings": settings, "files": stored}

    stored: dict[uuid.UUID, tuple[StoredFile, bytes]] = {}
    app = Starlette(
        exception_handlers=EXCEPTION_HANDLERS, middleware=[Middleware(RequestTargetCheck)]
    )
    app.router = MnemoRouter(
        routes_of((*files, openapi_endpoint(settings, files))), lifespan=lifespan
    )
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(files_app(_settings(app_max_attachment_bytes=1000))) as client:
        yield client


@pytest.fixture(scope="module")
def doc() -> Json:
    return build_openapi(_settings(), files)


# --- declarations ----------------------------------------------------------------------------


async def _nothing(request: Any) -> Any:
    return Response()


def test_declarations_refuse_a_file_and_json_at_once() -> None:
    with pytest.raises(ValueError, match="JSON body or uploads"):
        Endpoint("POST", "/v1/f", _nothing, "F", body=StoredFile, uploads=(RAW,))
    with pytest.raises(ValueError, match="JSON response or raw bytes"):
        Endpoint("GET", "/v1/f", _nothing, "F", response=StoredFile, produces=RAW)
    with pytest.raises(ValueError, match="repeats"):
        Endpoint("POST", "/v1/f", _nothing, "F", uploads=(RAW, RAW))
    for media_type in ("image/*", "Image/PNG", "png"):
        with pytest.raises(ValueError, match="no media type"):
            Endpoint("POST", "/v1/f", _nothing, "F", uploads=(media_type,))
    with pytest.raises(ValueError, match="no media type"):
        Endpoint("GET", "/v1/f", _nothing, "F", produces="png")
    with pytest.raises(ValueError, match="not both"):
        Answer(206, "Part", StoredFile, produces=RAW)
    # A range of types may be given (a thumbnail: image/*), not taken.
    Endpoint("GET", "/v1/f", _nothing, "F", produces="image/*")


# --- the document ----------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(doc: Json) -> None:
    schemathesis.openapi.from_dict(doc).validate()
    for node in _schemas(doc):
        jsonschema_rs.meta.validate(node)


def _schemas(doc: Json) -> Iterator[Json]:
    yield from doc["components"]["schemas"].values()
    for item in doc["paths"].values():
        for operation in item.values():
            for body in [operation.get("requestBody", {}), *operation["responses"].values()]:
                for media in body.get("content", {}).values():
                    if "schema" in media:  # a download's bytes have none
                        yield media["schema"]


def test_an_upload_is_the_file_itself_or_a_form(doc: Json) -> None:
    operation = doc["paths"]["/v1/files"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    raw = {"format": "binary", "contentMediaType": "application/octet-stream"}
    assert body["content"] == {
        "application/octet-stream": {"schema": raw},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", **raw}},
                "required": ["file"],
            }
        },
    }
    assert "any type" in body["description"] and "`file`" in body["description"]
    responses = operation["responses"]
    assert {"201", "400", "408", "413", "415", "422"} <= set(responses)
    assert "APP_MAX_BODY_BYTES" not in responses["413"]["description"]
    for status in ("400", "413", "415"):
        content = responses[status]["content"]
        assert content == {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
        }


def test_a_download_is_bytes_of_any_type_with_its_headers(doc: Json) -> None:
    operation = doc["paths"]["/v1/files/{file_id}"]["get"]
    responses = operation["responses"]
    raw: Json = {"*/*": {}}  # no schema: bytes (of a JSON file too) are not JSON
    assert responses["200"]["content"] == raw
    assert set(responses["200"]["headers"]) == {"ETag"}
    assert responses["206"]["content"] == raw
    assert set(responses["206"]["headers"]) == {"ETag", "Content-Range"}
    assert "content" not in responses["304"]
    assert set(responses["304"]["headers"]) == {"ETag"}
    assert responses["416"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    assert responses["416"]["headers"]["Content-Range"]["schema"]["pattern"] == r"^bytes \*/\d+$"
    assert "requestBody" not in operation
    assert {p["name"] for p in operation["parameters"] if p["in"] == "header"} == {
        "Range",
        "If-None-Match",
    }


def test_a_named_type_is_documented_as_itself() -> None:
    endpoints = Endpoints()
    endpoints.put("/v1/pictures", "Put a picture", uploads=("image/png",))(_nothing)
    endpoints.get("/v1/thumbnail", "A thumbnail", produces="image/*")(_nothing)
    doc = build_openapi(_settings(), endpoints)

    body = doc["paths"]["/v1/pictures"]["put"]["requestBody"]
    assert body["content"] == {
        "image/png": {"schema": {"format": "binary", "contentMediaType": "image/png"}}
    }
    assert "415" in doc["paths"]["/v1/pictures"]["put"]["responses"]
    thumbnail = doc["paths"]["/v1/thumbnail"]["get"]["responses"]["200"]["content"]
    assert thumbnail == {"image/*": {}}


# --- the app, by hand ------------------------------------------------------------------------


def test_upload_of_the_file_itself_and_of_a_form(client: TestClient) -> None:
    data = bytes(range(256)) * 3
    raw = client.post("/v1/files", content=data, headers={"Content-Type": "image/png"})
    assert raw.status_code == 201, raw.text
    assert raw.json()["media_type"] == "image/png" and raw.json()["size"] == len(data)
    form = client.post("/v1/files", files={"file": ("a.bin", data, "application/pdf")})
    assert form.status_code == 201, form.text
    assert form.json()["media_type"] == "application/pdf"
    assert form.json()["sha256"] == raw.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_upload_refuses_what_is_no_file(client: TestClient) -> None:
    assert_error(client.post("/v1/files", content=b"abc"), 415, "unsupported_media_type")
    no_file = client.post("/v1/files", files={"other": ("a.bin", b"x")})
    assert_error(no_file, 422)
    field = client.post("/v1/files", data={"file": "text, not a file"}, files={"x": ("x", b"")})
    assert_error(field, 422)
    broken = client.post(
        "/v1/files", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert_error(broken, 400)
    too_large = client.post("/v1/files", content=b"x" * 1001, headers={"Content-Type": RAW})
    assert_error(too_large, 413, "file_too_large")


def test_upload_type_is_declared_by_the_endpoint() -> None:
    forms = Endpoints()
    forms.post("/v1/forms", "Forms only", auth="none", uploads=(MULTIPART,))(_kind)
    forms.post("/v1/pngs", "PNG only", auth="none", uploads=("image/png",))(_kind)
    forms.post("/v1/json", "JSON", auth="none", body=StoredFile)(_kind)
    app = Starlette(exception_handlers=EXCEPTION_HANDLERS, routes=routes_of(forms))
    with TestClient(app) as other:
        assert other.post("/v1/forms", files={"file": ("a", b"a")}).text == MULTIPART
        raw = other.post("/v1/forms", content=b"a", headers={"Content-Type": RAW})
        assert_error(raw, 415)
        png = other.post("/v1/pngs", content=b"a", headers={"Content-Type": "Image/PNG; x=1"})
        assert png.text == "image/png"
        assert_error(other.post("/v1/pngs", content=b"a", headers={"Content-Type": RAW}), 415)
        with pytest.raises(TypeError, match="declares no uploads"):
            other.post("/v1/json", json={})


async def _kind(request: Any) -> Response:
    return Response(upload_type(request))


def test_download_answers_etag_ranges_and_304(client: TestClient, doc: Json) -> None:
    # A JSON file: neither it nor a range of it is held to a schema as JSON.
    data = b"[12345678]"
    stored = client.post(
        "/v1/files", content=data, headers={"Content-Type": "application/json"}
    ).json()
    url = f"/v1/files/{stored['id']}"
    etag = f'"{stored["sha256"]}"'
    operation = schemathesis.openapi.from_dict(doc)["/v1/files/{file_id}"]["GET"]

    def get(status: int, **headers: str) -> Any:
        response = client.get(url, headers=headers)
        assert response.status_code == status, response.text
        operation.validate_response(response)  # the document says so (status, body)
        return response

    whole = get(200)
    assert whole.content == data and whole.headers["etag"] == etag
    assert get(304, **{"If-None-Match": f'"other", {etag}'}).content == b""
    assert get(206, Range="bytes=2-4").content == b"234"
    assert get(206, Range="bytes=0-0").content == b"["
    assert get(206, Range="bytes=-3").headers["content-range"] == "bytes 7-9/10"
    assert get(206, Range="bytes=8-").content == b"8]"
    assert get(200, Range="pages=1-2").content == data  # not understood: ignored
    refused = get(416, Range="bytes=10-")
    assert refused.headers["content-range"] == "bytes */10"
    assert_error(refused, 416, "range_not_satisfiable")


# --- schemathesis ----------------------------------------------------------------------------


def _config(file_ids: list[str]) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 20261206,
            "workers": 1,
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": _ACCEPTED},
            },
            "generation": {"max-examples": 12, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"max-steps": 6}},
            "dictionaries": {"file_id": {"values": file_ids}},
            "parameters": {"path.file_id": {"dictionary": "file_id", "probability": 0.7}},
        }
    )


@pytest.fixture
def app() -> Iterator[Starlette]:
    try:
        yield files_app(_settings())
    finally:
        asgi.shutdown_lifespans()


def test_schemathesis_finds_no_failure_on_uploads_and_downloads(app: Starlette) -> None:
    """Every check, on bytes both ways: the bodies it generates for an upload (a file, a form)
    are taken, and downloads are not read as JSON (a JSON file among them)."""
    with TestClient(app) as client:
        ids = [
            client.post("/v1/files", content=content, headers={"Content-Type": media_type}).json()[
                "id"
            ]
            for content, media_type in [
                (b'{"a": [1, 2]}', "application/json"),
                (b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png"),
                (b"", "text/plain"),
            ]
        ]
        run = Run()
        _run_engine(app, _config(ids), run)

    assert not run.failures, _report(run.failures)
    assert {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
    } <= run.checks
    assert 201 in run.statuses["POST /v1/files"], run.statuses
    assert {200, 404} <= run.statuses["GET /v1/files/{file_id}"], run.statuses
