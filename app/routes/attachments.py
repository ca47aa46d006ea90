"""Attachments (README "Attachments"): upload a file into a conversation (raw body or
multipart/form-data, streamed to the database), download it (ETag, Range, a safe
Content-Disposition), its thumbnail, and the files a conversation's or a message's parts
reference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app import files
from app.auth import caller
from app.endpoints import (
    CURSOR,
    LOCATION,
    MULTIPART,
    RAW,
    Answer,
    Endpoints,
    Header,
    Param,
    limit_param,
    upload_type,
)
from app.errors import RETRY_AFTER_SECONDS, domain_error, error_response
from app.responses import record_response
from app.schemas import ErrorBody
from app.state import AppState
from app.uploads import open_upload
from dal import media
from dal.cursors import MAX_PAGE_SIZE
from dal.errors import DomainError
from dal.gateways import attachments as gateway
from dal.records.attachments import (
    Attachment,
    MessageAttachmentPage,
    MessageAttachments,
)
from dal.usecases import attachments

endpoints = Endpoints()
_UPLOAD = "/v1/conversations/{conversation_id:uuid}/attachments"
_ONE = "/v1/attachments/{attachment_id:uuid}"
_THUMBNAIL = _ONE + "/thumbnail"
_OF_MESSAGE = "/v1/conversations/{conversation_id:uuid}/messages/{message_id:uuid}/attachments"
_LIMIT = limit_param(50, MAX_PAGE_SIZE)

# Every answer with a file's bytes: never sniffed into something else, never run as a page
# (a sandbox with nothing allowed, should a browser open it anyway), private to the caller and
# checked again on each use (the ETag makes that a 304).
_SAFE = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-cache",
}
ETAG = Header("ETag", "The file's SHA-256, quoted: send it as If-None-Match", {"type": "string"})
_DISPOSITION = Header(
    "Content-Disposition",
    "inline for types a browser shows safely (raster images, PDF, audio, video, plain text), "
    "else attachment; the name as filename (ASCII) and filename* (UTF-8, RFC 6266)",
    {"type": "string"},
)
_NOSNIFF = Header("X-Content-Type-Options", "Always nosniff", {"type": "string"})
_ACCEPT_RANGES = Header("Accept-Ranges", "bytes", {"type": "string"})
_UNSATISFIED = Header("Content-Range", "The file's size: bytes */size", {"type": "string"})
_FILE_HEADERS = (ETAG, _DISPOSITION, _NOSNIFF, _ACCEPT_RANGES)
# Any string: a Range or a condition the server does not understand is ignored (RFC 9110).
_RANGE = Param(
    "Range",
    "bytes=first-last, first- or -suffix, several separated by commas: 206 with those bytes "
    "(several: multipart/byteranges), 416 if none is within the file; ignored (200) when not "
    "understood, when ranges overlap or when there are over 16",
    {"type": "string"},
    "header",
)
_IF_RANGE = Param(
    "If-Range",
    "The ETag of the copy a Range completes: Range is honoured only when it is the file's "
    "(else 200 with the whole file)",
    {"type": "string"},
    "header",
)
_IF_NONE_MATCH = Param(
    "If-None-Match",
    "ETags the client holds (a list, W/ or *): 304 when one is this one's",
    {"type": "string"},
    "header",
)


@endpoints.post(
    _UPLOAD,
    "Upload a file into the conversation (raw body or multipart/form-data field 'file'); "
    "201 with the attachment, 200 with the one already stored when the caller uploaded the "
    "same bytes before",
    uploads=(RAW, MULTIPART),
    response=Attachment,
    status=201,
    headers=(LOCATION,),
    answers=(
        Answer(200, "The same bytes were uploaded before: that attachment", Attachment),
        Answer(
            413,
            "attachment_too_large: the file is over APP_MAX_ATTACHMENT_BYTES; quota_exceeded: "
            "the caller's files would take over APP_ATTACHMENT_QUOTA_BYTES; body_too_large: a "
            "form's fields besides the file are over 64 KiB. The connection is closed",
            ErrorBody,
        ),
    ),
    errors=(403,),
)
async def upload_attachment(request: Request[AppState]) -> Response:
    me = caller(request)
    settings = request.state["settings"]
    limit = settings.app_max_attachment_bytes
    slots = request.state["uploads"]
    if not slots.take():
        return error_response(
            503,
            "too_many_uploads",
            f"this server takes {slots.limit} uploads at once (APP_MAX_CONCURRENT_UPLOADS): "
            "try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},
        )
    try:
        return await _upload(request, me.id, limit)
    finally:
        slots.give_back()


async def _upload(request: Request[AppState], user_id: UUID, limit: int) -> Response:
    settings = request.state["settings"]
    try:
        upload = await open_upload(request, limit, multipart=upload_type(request) == MULTIPART)
        uploaded = await attachments.upload_attachment(
            request.state["pool"],
            user_id=user_id,
            conversation_id=request.path_params["conversation_id"],
            name=media.safe_filename(upload.name),
            declared_type=upload.declared_type,
            content=upload.content,
            max_bytes=limit,
            quota=settings.app_attachment_quota_bytes,
        )
    except DomainError as exc:
        # Any refusal, not only a 413 (which app.errors closes anyway): the rest of the file
        # may still be on its way (a conversation not found, a 415, before a byte was read),
        # and the connection closes rather than read it all only to discard it.
        refused = await domain_error(cast("Request[Any]", request), exc)
        refused.headers["Connection"] = "close"
        return refused
    found = uploaded.attachment
    return record_response(found, 201 if uploaded.created else 200, headers={"Location": found.url})


def _file_headers(found: Attachment, etag: str) -> dict[str, str]:
    inline = media.is_inline_safe(found.media_type)
    return {
        **_SAFE,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": files.content_disposition(found.name, inline=inline),
    }


@endpoints.get(
    _ONE,
    "Download a file the caller may read (its uploader, or a member of a conversation where a "
    "message references it): streamed, with ETag, If-None-Match (304) and Range (206, 416)",
    produces=RAW,
    headers=_FILE_HEADERS,
    params=(_RANGE, _IF_RANGE, _IF_NONE_MATCH),
    answers=(
        Answer(
            206,
            "The bytes asked for by Range: one range with Content-Range: bytes first-last/size; "
            "several as multipart/byteranges, each part with its Content-Range",
            None,
            _FILE_HEADERS,
            produces=RAW,
        ),
        Answer(304, "If-None-Match matched: the copy the client holds is current", None, (ETAG,)),
        Answer(416, "No range asked for is within the file", ErrorBody, (_UNSATISFIED,)),
    ),
)
async def download_attachment(request: Request[AppState]) -> Response:
    me = caller(request)
    pool = request.state["pool"]
    found = await gateway.get_attachment(
        pool, user_id=me.id, attachment_id=request.path_params["attachment_id"]
    )
    etag = f'"{found.sha256}"'
    headers = _file_headers(found, etag)
    if files.etag_matches(request.headers.get("if-none-match"), etag):
        del headers["Content-Disposition"]
        return Response(status_code=304, headers=headers)
    size = found.size
    ranges = None
    if files.if_range_allows(request.headers.get("if-range"), etag):
        ranges = files.parse_range(request.headers.get("range"), size)
    if ranges == "unsatisfiable":
        return error_response(
            416,
            "range_not_satisfiable",
            f"no range asked for is within the file's {size} bytes",
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    head = request.method == "HEAD"

    def body(first: int, last: int) -> AsyncIterator[bytes]:
        return attachments.read_attachment(
            pool, user_id=me.id, attachment_id=found.id, first=first, last=last
        )

    if ranges is None or len(ranges) == 0:
        headers["Content-Length"] = str(size)
        if head or size == 0:
            return Response(status_code=200, headers=headers, media_type=found.media_type)
        return StreamingResponse(
            body(0, size - 1), status_code=200, headers=headers, media_type=found.media_type
        )
    if len(ranges) == 1:
        first, last = ranges[0]
        headers["Content-Length"] = str(last - first + 1)
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if head:
            return Response(status_code=206, headers=headers, media_type=found.media_type)
        return StreamingResponse(
            body(first, last), status_code=206, headers=headers, media_type=found.media_type
        )
    boundary = files.byteranges_boundary()
    body_of_ranges = files.multipart_byteranges(ranges, size, found.media_type, boundary)
    headers["Content-Length"] = str(body_of_ranges.content_length)

    async def many() -> AsyncIterator[bytes]:
        for part_head, first, last in body_of_ranges.parts:
            yield part_head
            async for piece in body(first, last):
                yield piece
        yield body_of_ranges.closing

    media_type = f"multipart/byteranges; boundary={boundary}"
    if head:
        return Response(status_code=206, headers=headers, media_type=media_type)
    return StreamingResponse(many(), status_code=206, headers=headers, media_type=media_type)


@endpoints.get(
    _THUMBNAIL,
    "The thumbnail of an image the caller may read (JPEG, PNG, WebP, GIF's first frame), at "
    "most 256 px on its long side, made on the first request; 404 for a file that is not such "
    "an image, 422 image_refused for a corrupt image or a decompression bomb",
    produces="image/webp",
    headers=(ETAG, _NOSNIFF),
    params=(_IF_NONE_MATCH,),
    answers=(
        Answer(304, "If-None-Match matched: the copy the client holds is current", None, (ETAG,)),
    ),
    errors=(422,),
)
async def get_thumbnail(request: Request[AppState]) -> Response:
    me = caller(request)
    settings = request.state["settings"]
    attachment_id = request.path_params["attachment_id"]
    made = await attachments.attachment_thumbnail(
        request.state["pool"],
        user_id=me.id,
        attachment_id=attachment_id,
        max_pixels=settings.app_max_image_pixels,
    )
    etag = f'"thumbnail-{attachment_id}"'
    headers = {**_SAFE, "ETag": etag}
    if files.etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    assert made.data is not None and made.media_type is not None
    return Response(made.data, headers=headers, media_type=made.media_type)


@endpoints.get(
    _UPLOAD,
    "A page of the files the conversation's messages reference, by message seq then file id",
    response=MessageAttachmentPage,
    params=(_LIMIT, CURSOR),
    errors=(403,),
)
async def list_conversation_attachments(request: Request[AppState]) -> Response:
    me = caller(request)
    limit = _LIMIT.integer(request)
    assert limit is not None
    page = await gateway.list_attachments_of_conversation(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        limit=limit,
        cursor=request.query_params.get("cursor") or None,
    )
    return record_response(page)


@endpoints.get(
    _OF_MESSAGE,
    "The files a message's parts reference",
    response=MessageAttachments,
    errors=(403,),
)
async def list_message_attachments(request: Request[AppState]) -> Response:
    me = caller(request)
    items = await gateway.list_attachments_of_message(
        request.state["pool"],
        user_id=me.id,
        conversation_id=request.path_params["conversation_id"],
        message_id=request.path_params["message_id"],
    )
    return record_response(MessageAttachments.from_values({"items": items}))
