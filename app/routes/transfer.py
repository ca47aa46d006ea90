"""Export (streamed) and import of the caller's conversations (dal.usecases.transfer).

An export is streamed from one database snapshot as the client reads it. Its status and
headers go out before the body, so a failure midway (the database lost) cannot become an
error status: the response ends early instead (no final chunk; a JSON document left
incomplete), and the server logs why. A client that stops reading is dropped after
APP_SEND_TIMEOUT, and the export's connection goes back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Annotated

from pydantic import Field, RootModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.auth import caller
from app.endpoints import Endpoints, Json, Param
from app.errors import HttpError
from app.responses import record_response
from app.routes.messages import _part_schema
from app.state import AppState
from dal.errors import DomainError
from dal.records.base import Row
from dal.records.conversations import Conversation
from dal.records.messages import Message, Part
from dal.records.transfer import ImportResult
from dal.usecases import transfer
from dal.usecases.transfer import ConversationDocument, MalformedImport, MessageIn, UIMessage

_log = logging.getLogger(__name__)
endpoints = Endpoints()

NDJSON = "application/x-ndjson"
# Media types of an import body besides JSON: NDJSON, as an export of everything writes it.
_NDJSON_TYPES = frozenset(
    {NDJSON, "application/ndjson", "application/jsonl", "application/x-jsonl"}
)
KEEP_IDS = Param(
    "keep_ids",
    "keep the conversations' and messages' ids (409 if a conversation id is taken; default: "
    "new ids)",
    {"type": "boolean", "default": False},
)


class ConversationExport(Row):
    """One exported conversation: the conversation, then its messages in seq order."""

    conversation: Conversation
    messages: list[Message]


def _ui_parts(schema: Json) -> None:
    """The parts of an imported message are UI message parts (messages._part_schema)."""
    schema["items"] = _part_schema()


_Parts = Annotated[list[Part], Field(json_schema_extra=_ui_parts)]


class ImportedMessage(MessageIn):
    """A message of an imported document (as an export writes it): ``role``, ``parts``,
    ``metadata``, ``status`` and ``id`` are read; the other fields an export writes are
    accepted and derived again."""

    parts: _Parts


class ImportedDocument(ConversationDocument):
    """One conversation and its messages, in order: what an export writes."""

    messages: list[ImportedMessage] = Field(default_factory=list)  # type: ignore[assignment]


class ImportedUIMessage(UIMessage):
    """A Vercel AI SDK ``UIMessage``; an array of them is one conversation. An id that is not
    a UUID gets a new one and is kept in the metadata as ``uiMessageId``."""

    parts: _Parts


class ImportBody(RootModel[ImportedDocument | list[ImportedUIMessage]]):
    """What an import reads: a conversation document as an export writes it, or an AI SDK
    ``UIMessage[]`` array (one conversation); NDJSON of several documents with
    ``Content-Type: application/x-ndjson``. (The document of the route: the handler reads the
    body with ``dal.usecases.transfer.read_documents``, by the same rules.)"""


class _Streamed(StreamingResponse):
    """A response streamed from an export, which is closed (its transaction ended and its
    connection released) however the response ends: done, client gone, failure."""

    def __init__(self, first: bytes, rest: AsyncGenerator[bytes, None], media_type: str, name: str):
        self._rest = rest

        async def body() -> AsyncGenerator[bytes, None]:
            yield first
            async for piece in rest:
                yield piece

        super().__init__(
            body(),
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except DomainError as exc:
            _log.warning("%s ended early, its response cut short: %s", scope["path"], exc)
            raise
        finally:
            await self._rest.aclose()


async def _stream(
    request: Request[AppState], pieces: AsyncGenerator[bytes, None], media_type: str, name: str
) -> Response:
    """The export as a response: its first piece is read before answering, so a missing
    conversation is a 404, not a cut stream."""
    try:
        first = await anext(pieces, b"")
    except BaseException:
        await pieces.aclose()
        raise
    if request.method == "HEAD":
        await pieces.aclose()
        return Response(media_type=media_type)
    return _Streamed(first, pieces, media_type, name)


@endpoints.get(
    "/v1/conversations/{conversation_id:uuid}/export",
    "Export a conversation: one JSON document (the conversation, then its messages in seq "
    "order), streamed from one snapshot",
    response=ConversationExport,
)
async def export_conversation(request: Request[AppState]) -> Response:
    me = caller(request)
    conversation_id = request.path_params["conversation_id"]
    pieces = transfer.export_conversation(
        request.state["pool"], user_id=me.id, conversation_id=conversation_id
    )
    return await _stream(request, pieces, "application/json", f"{conversation_id}.json")


@endpoints.get(
    "/v1/export",
    "Export every conversation of the caller as NDJSON (application/x-ndjson): one document "
    "per line, as the export of one conversation writes it, most recent activity first; "
    "streamed from one snapshot",
)
async def export_all(request: Request[AppState]) -> Response:
    me = caller(request)
    pieces = transfer.export_all(request.state["pool"], user_id=me.id)
    return await _stream(request, pieces, NDJSON, "conversations.ndjson")


async def _read_import(request: Request[AppState]) -> bytes:
    """The body, refused with 413 past APP_MAX_IMPORT_BYTES and 415 if not JSON or NDJSON."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    json = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if not (json or media_type in _NDJSON_TYPES):
        raise HttpError(
            415, "unsupported_media_type", f"send the body as application/json or {NDJSON}"
        )
    limit = request.state["settings"].app_max_import_bytes
    declared = request.headers.get("content-length")
    too_large = HttpError(413, "body_too_large", f"import body is over {limit} bytes")
    if declared and declared.isascii() and declared.isdigit():
        if len(declared.lstrip("0")) > 18 or int(declared) > limit:
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


@endpoints.post(
    "/v1/conversations/import",
    "Import conversations in one transaction: an exported document, NDJSON of several "
    "(Content-Type: application/x-ndjson), or an AI SDK UIMessage[] array; answers the counts",
    body=ImportBody,
    response=ImportResult,
    status=201,
    params=(KEEP_IDS,),
    errors=(409,),
)
async def import_conversations(request: Request[AppState]) -> Response:
    me = caller(request)
    keep_ids = KEEP_IDS.boolean(request)
    body = await _read_import(request)
    settings = request.state["settings"]
    try:
        documents = await asyncio.to_thread(
            transfer.read_documents, body, max_json_depth=settings.app_max_json_depth
        )
    except MalformedImport as exc:
        raise HttpError(400, "malformed_json", exc.message) from exc
    del body
    result = await transfer.import_conversations(
        request.state["pool"],
        user_id=me.id,
        documents=documents,
        keep_ids=keep_ids,
        max_bytes=settings.app_max_message_bytes,
        max_parts=settings.app_max_message_parts,
        timeout=settings.app_import_timeout,
    )
    return record_response(result, 201)
