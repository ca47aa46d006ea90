"""The body of an upload, as it streams: raw (the file is the body; its name from
``Content-Disposition``) or ``multipart/form-data`` (what a browser's form or ``curl -F``
sends; the file is the part named ``file``, else the first part with a filename). Either way
the route gets the file's name, its declared type and an async iterator of its bytes, read
from the request as they arrive: nothing holds the whole body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from app.errors import HttpError
from app.files import parse_content_disposition_filename
from app.state import AppState
from dal.errors import InvalidInput
from dal.media import normalize_media_type

# What a multipart body may hold besides its file (boundaries, part headers, other fields).
MULTIPART_OVERHEAD = 64 * 1024
# Headers of one part: count and bytes.
_MAX_PART_HEADERS = 8
_MAX_PART_HEADER_BYTES = 8 * 1024


@dataclass
class Upload:
    """A file arriving: its name as sent (None: none given), its declared media type
    (``dal.media.normalize_media_type``'s: None when the client's is no media type, a
    wildcard or none), and its bytes as they arrive (read once)."""

    name: str | None
    declared_type: str | None
    content: AsyncIterator[bytes]


def too_large(max_bytes: int) -> HttpError:
    return HttpError(
        413,
        "attachment_too_large",
        f"the file is over {max_bytes} bytes (APP_MAX_ATTACHMENT_BYTES)",
    )


def malformed(message: str) -> HttpError:
    """400: the multipart/form-data body cannot be read as one (as malformed JSON is 400;
    a well-formed form without a file is 422)."""
    return HttpError(400, "malformed_multipart", message)


def _declared_length(request: Request[AppState]) -> int | None:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and len(declared) < 19:
        return int(declared)
    return None


async def open_upload(request: Request[AppState], max_bytes: int, *, multipart: bool) -> Upload:
    """The file the request carries. 413 at once when Content-Length says it is over
    ``max_bytes``; a raw body's bytes are counted as they come by the use case, a multipart
    body's file the same, and its other bytes here (at most MULTIPART_OVERHEAD)."""
    content_type = request.headers.get("content-type", "")
    length = _declared_length(request)
    if length is not None and length > max_bytes + (MULTIPART_OVERHEAD if multipart else 0):
        raise too_large(max_bytes)
    if multipart:
        return await _multipart(request, content_type, max_bytes)
    declared = normalize_media_type(content_type)
    name = parse_content_disposition_filename(request.headers.get("content-disposition"))
    if name is None:
        name = request.query_params.get("filename") or None
    return Upload(name, declared, request.stream())


class _Parts:
    """The callbacks of python-multipart's streaming parser: the file part's headers, its
    data (handed on after every write), the end of the body."""

    def __init__(self) -> None:
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.file_seen = False
        self.file_done = False
        self.name: str | None = None
        self.declared: str | None = None
        self.data: list[bytes] = []
        self.other_bytes = 0
        self.ended = False

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).strip().lower()] = bytes(self.header_value).strip()
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        field = options.get(b"name")
        filename = options.get(b"filename")
        if self.file_seen or (field != b"file" and filename is None):
            self.in_file = False
            return
        self.in_file = self.file_seen = True
        self.name = _text(filename) if filename is not None else None
        declared = self.headers.get(b"content-type")
        self.declared = normalize_media_type(_text(declared)) if declared else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.data.append(data[start:end])
        else:
            self.other_bytes += end - start

    def on_part_end(self) -> None:
        if self.in_file:
            self.file_done = True
        self.in_file = False

    def on_end(self) -> None:
        self.ended = True

    def take(self) -> list[bytes]:
        data, self.data = self.data, []
        return data


def _text(raw: bytes) -> str:
    """A header's bytes as text: UTF-8 (what browsers send), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def _multipart(request: Request[AppState], content_type: str, max_bytes: int) -> Upload:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise malformed("a multipart/form-data body needs a boundary (of at most 200 bytes)")
    parts = _Parts()
    callbacks = {
        name: getattr(parts, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(
        boundary,
        callbacks,  # type: ignore[arg-type]
        max_header_count=_MAX_PART_HEADERS,
        max_header_size=_MAX_PART_HEADER_BYTES,
    )
    stream = request.stream()

    def feed(chunk: bytes) -> None:
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise malformed(f"the multipart/form-data body is malformed: {exc}") from None
        if parts.other_bytes > MULTIPART_OVERHEAD:
            raise HttpError(
                413,
                "body_too_large",
                f"fields besides the file are over {MULTIPART_OVERHEAD} bytes",
            )

    # Read until the file's headers are in: its name and type are needed before its bytes.
    async for chunk in stream:
        feed(chunk)
        if parts.file_seen or parts.ended:
            break
    if not parts.file_seen and not parts.ended:
        raise malformed("the multipart/form-data body ended before its closing boundary")
    if not parts.file_seen:
        raise InvalidInput("the multipart/form-data body holds no file (send it as field 'file')")

    async def content() -> AsyncIterator[bytes]:
        for piece in parts.take():
            yield piece
        async for chunk in stream:
            feed(chunk)
            for piece in parts.take():
                yield piece
        if not parts.ended or not parts.file_done:
            raise malformed("the multipart/form-data body ended before its closing boundary")

    return Upload(parts.name, parts.declared, content())
