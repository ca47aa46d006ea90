"""No client can hold the server: real sockets against the app behind a real uvicorn.

Idle connections, headers dripped byte by byte and bodies sent slowly are cut off after the
settings' timeouts (small here); connections beyond APP_MAX_CONNECTIONS are answered 503;
heads over 16 KiB are refused; a client that goes away mid-body is not an error of the server.
Every test runs with each HTTP parser (APP_HTTP: httptools and h11). Bounds are generous
(several times the timeouts), so a loaded machine does not make them fail.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import orjson
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import server
from dal.settings import Settings
from tests.app.conftest import ADMIN_TOKEN, auth, make_user
from tests.app.serving import serving

BOUND = 15.0  # seconds within which a connection past its timeout must be closed


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=BOUND)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF or reset) before BOUND seconds."""
    sock.settimeout(BOUND)
    try:
        while sock.recv(65536):
            pass  # whatever it said before closing
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def drip(sock: socket.socket, data: bytes, *, every: float = 0.2) -> tuple[bool, bytes]:
    """Send ``data`` one byte at a time: (whether the server closed the connection before
    the last byte, what it sent meanwhile)."""
    received = b""
    sock.settimeout(every)
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # nothing to read: the server still waits
        except (BrokenPipeError, ConnectionResetError):
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or pauses for a second."""
    sock.settimeout(BOUND)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            sock.settimeout(1)
    except TimeoutError:
        pass
    except ConnectionResetError:
        pass
    return data


def request(path: str = "/openapi.json") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def post_head(length: int, *, token: str | None = ADMIN_TOKEN) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        "POST /v1/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture(params=["httptools", "h11"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The test's settings, with each of the HTTP parsers in turn."""
    return settings.model_copy(update={"app_http": request.param})


@pytest.fixture
def limits(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "app_keep_alive_timeout": 0.5,
            "app_header_timeout": 1.0,
            "app_body_timeout": 1.0,
            "db_min_connections": 0,
        }
    )


@pytest.fixture
def base(limits: Settings) -> Iterator[str]:
    with serving(limits) as base:
        yield base


def test_server_closes_connection_that_never_sends_a_request(base: str) -> None:
    with connect(base) as sock:
        assert closed_by_server(sock)


def test_server_closes_idle_connection_after_keep_alive_timeout(
    base: str, limits: Settings
) -> None:
    # uvicorn's own timer, set from the settings (its default is 5 s).
    assert server.config(limits).timeout_keep_alive == limits.app_keep_alive_timeout == 0.5
    with connect(base) as sock:
        sock.sendall(request())
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert closed_by_server(sock)
        assert time.monotonic() - started < BOUND


def test_server_cuts_off_headers_sent_byte_by_byte(base: str) -> None:
    with connect(base) as sock:
        # Headers that never end: one byte every 0.2 s for up to a minute.
        endless = b"GET /openapi.json HTTP/1.1\r\n" + b"X-Slow: y\r\n" * 30
        closed, answer = drip(sock, endless)
        assert closed, "the server waited for the headers for a minute"
        assert answer == b"", answer


def test_server_cuts_off_slow_headers_of_a_second_request(base: str) -> None:
    """Each byte of a new request cancels uvicorn's keep-alive timer: the header deadline
    covers the requests after the first too."""
    with connect(base) as sock:
        sock.sendall(request())
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        closed, answer = drip(sock, b"GET /openapi.json HTTP/1.1\r\n" + b"X-Slow: y\r\n" * 30)
        assert closed and answer == b"", answer


def test_server_answers_408_to_a_body_sent_too_slowly(
    base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = b'{"username": "' + b"s" * 200 + b'"}'
    with connect(base) as sock:
        sock.sendall(post_head(len(body)))
        closed, answer = drip(sock, body)
        assert closed, "the server waited for the body for a minute"
    # Either the 408 arrived before the close, or the close reset it: both free the server.
    if answer:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer and b"connection: close" in answer.lower()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def trickle(
    sock: socket.socket, data: bytes, *, chunk: int, every: float = 0.1
) -> tuple[bool, bytes, float]:
    """Send ``data`` ``chunk`` bytes every ``every`` seconds: (whether the server closed the
    connection before the last chunk, what it sent meanwhile, seconds it took)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(every)
    for start in range(0, len(data), chunk):
        try:
            sock.sendall(data[start : start + chunk])
            answer = sock.recv(65536)
        except TimeoutError:
            continue  # nothing to read: the server still waits
        except (BrokenPipeError, ConnectionResetError):
            return True, received, time.monotonic() - started
        if not answer:
            return True, received, time.monotonic() - started
        received += answer
    return False, received, time.monotonic() - started


def user_draft(username: str, size: int) -> bytes:
    """A user's draft of ``size`` bytes (padded with blanks, which JSON ignores)."""
    head = b'{"username": "' + username.encode() + b'"'
    return head + b" " * (size - len(head) - 1) + b"}"


def assert_timed_out(answer: bytes) -> None:
    # Either the 408 arrived before the close, or the close reset it: both free the server.
    if answer:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer and b"connection: close" in answer.lower()


def test_server_serves_a_body_that_keeps_the_rate_past_the_body_timeout(limits: Settings) -> None:
    """APP_MIN_BODY_RATE: a body three times longer than APP_BODY_TIMEOUT (1 s), sent at twice
    the rate, is served."""
    rated = limits.model_copy(update={"app_min_body_rate": 100})
    body = user_draft("trickle", 600)
    with serving(rated) as base, connect(base) as sock:
        sock.sendall(post_head(len(body)))
        closed, answer, elapsed = trickle(sock, body, chunk=20)  # 200 bytes/s
        assert not closed, answer
        answer += read_response(sock)
    assert elapsed > 2 * limits.app_body_timeout
    assert answer.startswith(b"HTTP/1.1 201 "), answer


def test_server_cuts_off_a_body_below_the_rate(
    limits: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """At 70% of APP_MIN_BODY_RATE a body earns time, but less than passes: cut after about
    APP_BODY_TIMEOUT / 0.3 (3.3 s), not after APP_BODY_TIMEOUT (1 s), nor never."""
    caplog.set_level(logging.DEBUG)
    rated = limits.model_copy(update={"app_min_body_rate": 1000})
    body = user_draft("slow", 20_000)
    with serving(rated) as base, connect(base) as sock:
        sock.sendall(post_head(len(body)))
        closed, answer, elapsed = trickle(sock, body, chunk=70)  # 700 bytes/s
        assert closed, "the server waited for the body for half a minute"
    assert_timed_out(answer)
    assert elapsed > 1.8 * limits.app_body_timeout
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_server_cuts_off_a_body_that_stalls(limits: Settings) -> None:
    """A body that stops: cut APP_BODY_TIMEOUT after its last bytes, whatever time they
    earned (30 s here), and after its head if none came."""
    rated = limits.model_copy(update={"app_min_body_rate": 100})
    body = user_draft("stalled", 10_000)
    with serving(rated) as base:
        for sent in (body[:3000], b""):
            with connect(base) as sock:
                sock.sendall(post_head(len(body)))
                time.sleep(0.1)  # bytes that come with the head earn nothing
                sock.sendall(sent)
                started = time.monotonic()
                answer = read_response(sock)
                elapsed = time.monotonic() - started
                assert closed_by_server(sock)
            assert_timed_out(answer)
            assert elapsed < BOUND < 30, elapsed


def test_server_cuts_off_a_slow_body_the_app_did_not_wait_for(base: str) -> None:
    """An app that answered without reading the body (401 here): the rest of the body must
    still arrive in time, or the connection is closed."""
    body = b'{"username": "' + b"s" * 200 + b'"}'
    with connect(base) as sock:
        sock.sendall(post_head(len(body), token=None))
        closed, answer = drip(sock, body)
        assert closed, "the server waited for the body for a minute"
        assert answer.startswith(b"HTTP/1.1 401 "), answer


def test_protocol_follows_app_http(settings: Settings) -> None:
    protocol = server.config(settings).http
    assert isinstance(protocol, type)
    expected = {"httptools": HttpToolsProtocol, "h11": H11Protocol}[settings.app_http]
    assert issubclass(protocol, server.Bounds) and issubclass(protocol, expected)


def test_protocol_has_the_body_limits_of_the_settings(settings: Settings) -> None:
    changed = settings.model_copy(
        update={"app_min_body_rate": 1234, "app_max_attachment_bytes": 2**40}
    )
    protocol = server.protocol_class(changed)
    assert (protocol.min_body_rate, protocol.largest_body) == (1234, 2**40)
    assert server.protocol_class(settings).largest_body == settings.app_max_import_bytes


def test_server_refuses_headers_over_16_kib(base: str) -> None:
    for size, status in ((15 * 1024, b"200"), (17 * 1024, b"400")):
        head = f"GET /openapi.json HTTP/1.1\r\nHost: test\r\nX-Big: {'b' * size}\r\n\r\n"
        with connect(base) as sock:
            sock.sendall(head.encode())
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 " + status + b" "), (size, answer[:200])


def test_server_refuses_endless_headers_past_16_kib(limits: Settings) -> None:
    """Headers that never end, sent fast: refused once past the bound, not buffered until the
    header deadline (two minutes here)."""
    patient = limits.model_copy(update={"app_header_timeout": 120.0})
    with serving(patient) as base, connect(base) as sock:
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n")
        refused = b""
        try:
            for _ in range(64):  # 64 KiB of headers, 1 KiB at a time
                sock.sendall(b"X-Many: " + b"m" * 1014 + b"\r\n")
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            refused = read_response(sock)
        if refused:  # or the reset overtook the answer
            assert refused.startswith(b"HTTP/1.1 400 "), refused[:200]
        assert closed_by_server(sock)


def test_server_serves_a_body_sent_in_time(base: str) -> None:
    body = b'{"username": "prompt"}'
    with connect(base) as sock:
        sock.sendall(post_head(len(body)))
        time.sleep(0.1)
        sock.sendall(body)
        assert read_response(sock).startswith(b"HTTP/1.1 201 ")


def test_server_drops_a_client_that_does_not_read_its_answer(settings: Settings) -> None:
    """A page of about 6 MB asked for by a client that never reads it: beyond what the
    kernel's buffers take, the rest would stay in the app's memory for as long as the client
    likes."""
    stalling = settings.model_copy(
        update={"app_send_timeout": 1.0, "app_max_page_bytes": 16 * 1024 * 1024}
    )
    with serving(stalling) as base, httpx.Client(base_url=base, timeout=BOUND * 2) as http:
        me = auth(make_user(http, "reader")[1])
        conv = http.post("/v1/conversations", json={}, headers=me).json()
        messages = f"/v1/conversations/{conv['id']}/messages"
        big = {"role": "user", "parts": [{"type": "text", "text": "x" * 900_000}]}
        for _ in range(7):
            assert http.post(messages, json=big, headers=me).status_code == 201
        with socket.socket() as sock:
            # A small receive window: the answer piles up on the server's side.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            host, port = base.removeprefix("http://").split(":")
            sock.connect((host, int(port)))
            sock.sendall(
                f"GET {messages}?limit=50 HTTP/1.1\r\nHost: test\r\n"
                f"Authorization: {me['Authorization']}\r\n\r\n".encode()
            )
            time.sleep(6)  # several send timeouts, not reading
            answer = read_response(sock)
    if not answer:
        return  # the reset overtook even the first bytes: cut off all the same
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = int(next(v for k, v in parse_headers(head) if k == b"content-length"))
    assert length > 6_000_000
    assert len(body) < length, "the whole answer waited for the client"


def parse_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(b":") for line in lines)]


def test_server_refuses_connections_over_the_cap_with_503(settings: Settings) -> None:
    capped = settings.model_copy(
        update={"app_max_connections": 3, "app_header_timeout": 120.0, "db_min_connections": 0}
    )
    with serving(capped) as base, ExitStack() as stack:
        idle = [stack.enter_context(connect(base)) for _ in range(2)]
        with connect(base) as third:  # 3 connections: within the cap
            third.sendall(request())
            assert read_response(third).startswith(b"HTTP/1.1 200 ")
        idle.append(stack.enter_context(connect(base)))
        with connect(base) as fourth:  # 4 connections
            fourth.sendall(request())
            answer = read_response(fourth)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            head, _, body = answer.partition(b"\r\n\r\n")
            headers = dict(parse_headers(head))
            assert headers[b"retry-after"].isdigit()
            assert orjson.loads(body)["error"]["code"] == "over_capacity"
            assert closed_by_server(fourth)


def test_slow_clients_do_not_hold_the_server_when_it_stops(
    limits: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C or SIGTERM: uvicorn waits for requests in progress; a client dripping its body
    (or its headers) must not make it wait for that request's deadline."""
    patient = limits.model_copy(update={"app_body_timeout": 120.0, "app_header_timeout": 120.0})
    with ExitStack() as clients, ExitStack() as app:
        base = app.enter_context(serving(patient))
        dripping = clients.enter_context(connect(base))
        dripping.sendall(post_head(1000) + b'{"username": ')
        heading = clients.enter_context(connect(base))
        heading.sendall(b"GET /openapi.json HTTP/1.1\r\n")
        time.sleep(0.5)  # the app is reading the body
        started = time.monotonic()
        app.close()  # stops the server, the clients still connected
        elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"the server took {elapsed:.1f} s to stop"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_client_gone_mid_body_is_not_logged_as_an_error(
    base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with connect(base) as sock:
        sock.sendall(post_head(1000) + b'{"username": ')
        time.sleep(0.2)  # the app is reading the body
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and not [
        r for r in caplog.records if r.name.startswith("app")
    ]:
        time.sleep(0.05)
    ours = [r for r in caplog.records if r.name.startswith("app")]
    assert ours, "the app logged nothing about the disconnect"
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in ours), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
