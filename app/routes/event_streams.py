"""Live events of a task's or a conversation's log as server-sent events (README "Live
events"): the log from a resume point (Last-Event-ID, else ``?after=``), then its new events
as they are committed, without a gap or a duplicate at the seam.

A stream subscribes to the process's hub (app/event_hub.py) first, so that every event
committed from then on is buffered; then it replays the log in pages up to its head; then it
sends the buffered and live events above the last seq it sent. Seqs go out contiguous: an
event past a gap (one a lost notification skipped) is sent only after the gap is read from the
log. Every APP_EVENT_STREAM_HEARTBEAT_SECONDS a comment line keeps proxies from closing the
idle connection, and the stream checks again that the token is valid and the caller may still
read the log (a removed member's stream ends), reading any event it missed meanwhile. The
stream ends when the hub drops it (its client left APP_EVENT_STREAM_BUFFER events unread),
after APP_EVENT_STREAM_MAX_SECONDS, when the app stops, or when the database fails: the client
resumes with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.auth import caller, current_user
from app.body import INT8_MAX
from app.endpoints import Endpoints, Header, Param
from app.errors import RETRY_AFTER_SECONDS, HttpError, error_response
from app.event_hub import LogKey, Subscription
from app.state import AppState
from dal.errors import DomainError
from dal.gateways import events
from dal.records.events import Event, EventPage

endpoints = Endpoints()
MEDIA_TYPE = "text/event-stream"
_TASK = "/v1/tasks/{task_id:uuid}/events/stream"
_CONVERSATION = "/v1/conversations/{conversation_id:uuid}/events/stream"
# Events one page of the replay (and of a gap's or a heartbeat's read) takes.
PAGE = 200
HEARTBEAT = b": keep-alive\n\n"
_HEADERS = {
    # Never stored by a cache; not buffered by a proxy (nginx reads X-Accel-Buffering).
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}

_AFTER = Param(
    "after",
    "Send the events after this seq (default 0: the whole log); Last-Event-ID, when sent, "
    "takes precedence. To receive only new events, pass the log's last_seq",
    {"type": "integer", "minimum": 0, "maximum": INT8_MAX, "default": 0},
)
_LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "The id (seq) of the last event the client received: the stream resumes after it (what "
    "EventSource sends when it reconnects); empty: as if not sent",
    {"type": "string", "pattern": "^[0-9]{0,19}$"},
    "header",
)
_NO_STORE = Header("Cache-Control", "no-store", {"type": "string"})
_DESCRIPTION = (
    "; text/event-stream, each event as id: <seq>, event: <type>, data: {seq, type, payload, "
    "created_at}; a ': keep-alive' comment every APP_EVENT_STREAM_HEARTBEAT_SECONDS. "
    "503 too_many_streams past APP_MAX_EVENT_STREAMS streams in this process"
)

# Reads a page of the log for the caller after a seq (NotFound once they may not).
ReadPage = Callable[[int], Awaitable[EventPage]]


@endpoints.get(
    _TASK,
    "Watch a task's events live (the caller's task): the log from Last-Event-ID or ?after=, "
    "then each new event as it is committed" + _DESCRIPTION,
    produces=MEDIA_TYPE,
    headers=(_NO_STORE,),
    params=(_AFTER, _LAST_EVENT_ID),
)
async def stream_task_events(request: Request[AppState]) -> Response:
    me = caller(request)
    task_id: UUID = request.path_params["task_id"]
    pool = request.state["pool"]

    async def read_page(after: int) -> EventPage:
        return await events.list_task_events(
            pool, user_id=me.id, task_id=task_id, after=after, limit=PAGE
        )

    return await _stream(request, ("task", task_id), read_page)


@endpoints.get(
    _CONVERSATION,
    "Watch a conversation's events live (a member who may read it): the log from "
    "Last-Event-ID or ?after=, then each new event as it is committed" + _DESCRIPTION,
    produces=MEDIA_TYPE,
    headers=(_NO_STORE,),
    params=(_AFTER, _LAST_EVENT_ID),
)
async def stream_conversation_events(request: Request[AppState]) -> Response:
    me = caller(request)
    conversation_id: UUID = request.path_params["conversation_id"]
    pool = request.state["pool"]

    async def read_page(after: int) -> EventPage:
        return await events.list_conversation_events(
            pool, user_id=me.id, conversation_id=conversation_id, after=after, limit=PAGE
        )

    return await _stream(request, ("conversation", conversation_id), read_page)


def resume_point(request: Request[AppState]) -> int:
    """The seq the stream starts after: Last-Event-ID (400 if not a seq), else ``?after=``
    (422 if not one). A seq beyond any (over 2^63 - 1) is the largest."""
    after = _AFTER.integer(request)  # checked even when Last-Event-ID is sent
    assert after is not None
    last = request.headers.get("last-event-id", "").strip()
    if last:
        if not (last.isascii() and last.isdigit()) or len(last) > 19:
            raise HttpError(400, "malformed_last_event_id", "Last-Event-ID must be a seq")
        return min(int(last), INT8_MAX)
    return after


async def _stream(request: Request[AppState], key: LogKey, read_page: ReadPage) -> Response:
    hub = request.state["events"]
    after = resume_point(request)
    if not hub.take_slot():
        return error_response(
            503,
            "too_many_streams",
            f"this server serves {request.state['settings'].app_max_event_streams} event "
            "streams at once (APP_MAX_EVENT_STREAMS), or is stopping: try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    # Subscribed before the log is read: what is committed from now on is buffered.
    subscription = hub.subscribe(key, after)
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            hub.unsubscribe(subscription)
            hub.give_back_slot()

    try:
        first = await read_page(after)  # NotFound (404) before the stream starts
    except BaseException:
        close()
        raise
    if request.method == "HEAD":
        close()
        return Response(headers=_HEADERS, media_type=MEDIA_TYPE)
    return _EventStream(
        _events(request, subscription, first, read_page, close),
        close,
        headers=_HEADERS,
        media_type=MEDIA_TYPE,
    )


class _EventStream(StreamingResponse):
    """A stream that gives its subscription and slot back however it ends: also when its
    client left before the first byte (Starlette then never starts the generator, whose own
    ``finally`` would not run)."""

    def __init__(self, content: AsyncIterator[bytes], close: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


def frame(event: Event) -> bytes:
    """One event as server-sent events write it (``type`` has no line break: its pattern)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.seq,
        event.type.encode(),
        event.model_dump_json().encode(),
    )


async def _events(
    request: Request[AppState],
    subscription: Subscription,
    page: EventPage,
    read_page: ReadPage,
    close: Callable[[], None],
) -> AsyncIterator[bytes]:
    settings = request.state["settings"]
    loop = asyncio.get_running_loop()
    lifetime = settings.app_event_stream_max_seconds
    ends_at = loop.time() + lifetime if lifetime > 0 else None
    every = settings.app_event_stream_heartbeat_seconds

    def sending(found: list[Event]) -> bytes:
        """The frames of the events after the last one sent (contiguous from it)."""
        out = []
        for event in found:
            if event.seq == subscription.sent + 1:
                out.append(frame(event))
                subscription.sent = event.seq
        return b"".join(out)

    async def until(seq: int) -> AsyncIterator[bytes]:
        """The log's events from the last one sent up to ``seq`` (at least), read in pages."""
        while subscription.sent < seq:
            found = await read_page(subscription.sent)
            chunk = sending(found.items)
            if not chunk:
                return  # the log holds no more (deleted meanwhile): the stream ends
            yield chunk

    try:
        # The replay: the log up to its head as the last page read saw it.
        chunk = sending(page.items)
        if chunk:
            yield chunk
        async for chunk in until(page.last_seq):
            yield chunk
        beat_at = loop.time() + every
        while not subscription.ended:
            now = loop.time()
            if ends_at is not None and now >= ends_at:
                return
            if now >= beat_at:
                # Still the caller's, and their token still valid (else NotFound /
                # Unauthorized end the stream); anything the hub missed is read here.
                await current_user(request)
                async for chunk in until(subscription.sent + 1):
                    yield chunk
                yield HEARTBEAT
                beat_at = loop.time() + every
            wake_at = beat_at if ends_at is None else min(beat_at, ends_at)
            await subscription.wait(max(0.0, wake_at - loop.time()))
            pending: list[bytes] = []
            for event in subscription.take():
                if event.seq > subscription.sent + 1:
                    # A gap (a notification lost while the listener was away): from the log.
                    if pending:
                        yield b"".join(pending)
                        pending = []
                    async for chunk in until(event.seq - 1):
                        yield chunk
                pending.append(sending([event]))
            if any(pending):
                yield b"".join(pending)
    except DomainError:
        return  # the database failed, or the caller lost access: the client resumes later
    finally:
        close()
