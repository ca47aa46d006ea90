"""Attachments over HTTP (README "Attachments"): uploads raw and multipart (deduplicated,
refused when malformed, too large or over the quota, leaving nothing behind), byte-exact
downloads with Range, ETag and If-None-Match, the headers that keep a file from running as a
page, who may read a file, thumbnails, the lists of a conversation's and a message's files,
and ``mnemo attachments gc``. Tests that need real sockets (a slow body, a client gone
mid-upload, a large file streamed both ways) run the app behind a real uvicorn."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import random
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from PIL import Image
from starlette.testclient import TestClient

from app import create_app
from dal.gateways.attachments import CHUNK_SIZE
from dal.records.base import ATTACHMENT_PATH
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    append,
    assert_error,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)
from tests.app.serving import serving
from tests.test_cli import mnemo

BOUND = 15.0  # seconds within which what a real server does must have happened

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script></svg>\n"
)
# The name of a raw upload, as RFC 8187 encodes it: 报告.pdf
REPORT_NAME = "报告.pdf"
REPORT_DISPOSITION = "attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"


# --- helpers ---------------------------------------------------------------------------------


def sql(settings: Settings, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Ad-hoc SQL on the test's database (to see what is really stored)."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cursor = conn.execute(statement, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def stored(settings: Settings) -> tuple[int, int, int]:
    """Rows of attachments, rows of chunks, and the bytes of every user's usage."""
    [row] = sql(
        settings,
        "SELECT (SELECT count(*) FROM attachments), (SELECT count(*) FROM attachment_chunks),"
        " (SELECT coalesce(sum(bytes), 0) FROM attachment_usage)",
    )
    return int(row[0]), int(row[1]), int(row[2])


def uploads_url(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}/attachments"


def disposition(name: str) -> str:
    return "attachment; filename*=UTF-8''" + quote(name, safe="")


def upload(
    client: httpx.Client,
    caller: Caller,
    conversation_id: str,
    data: bytes,
    *,
    name: str = "file.bin",
    content_type: str = "application/octet-stream",
    status: int = 201,
) -> Json:
    """A raw upload (the body is the file); ``status`` expected; the attachment."""
    response = client.post(
        uploads_url(conversation_id),
        content=data,
        headers={
            **caller.headers,
            "Content-Type": content_type,
            "Content-Disposition": disposition(name),
        },
    )
    assert response.status_code == status, response.text
    found: Json = response.json()
    return found


def file_url(attachment: Json) -> str:
    return f"/v1/attachments/{attachment['id']}"


def file_part(attachment: Json, **extra: Any) -> Json:
    return {
        "type": "file",
        "mediaType": attachment["media_type"],
        "url": attachment["url"],
        **extra,
    }


def send(client: TestClient, caller: Caller, conversation_id: str, *files: Json) -> Json:
    """A message of ``caller``'s whose file parts reference ``files``."""
    parts = [text_part("see attached"), *(file_part(f) for f in files)]
    return append(client, caller, conversation_id, parts=parts)


def add_member(client: TestClient, owner: Caller, conversation_id: str, member: Caller) -> None:
    added = client.post(
        f"/v1/conversations/{conversation_id}/members",
        json={"user_id": member.id},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text


def image(kind: str, size: tuple[int, int] = (640, 480)) -> bytes:
    """An image of Pillow's format ``kind`` (JPEG, PNG, WEBP, GIF) with some detail."""
    picture = Image.new("RGB", size, "navy")
    for x in range(0, size[0], 16):
        picture.paste((x % 256, 128, 255 - x % 256), (x, 0, x + 8, size[1]))
    buffer = io.BytesIO()
    picture.save(buffer, kind)
    return buffer.getvalue()


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def multipart(boundary: str, *parts: tuple[str, bytes], closed: bool = True) -> bytes:
    """A multipart/form-data body of ``(part headers, content)`` parts, by hand (to send
    what no client library would: no file, no closing boundary)."""
    body = b"".join(
        f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
        for headers, content in parts
    )
    return body + (f"--{boundary}--\r\n".encode() if closed else b"")


def form_headers(caller: Caller, boundary: str) -> dict[str, str]:
    return {**caller.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def chat(client: TestClient, alice: Caller) -> str:
    """A conversation of alice's: its id."""
    return str(make_conversation(client, alice, title="files")["id"])


@pytest.fixture
def limited(settings: Settings) -> Settings:
    """Settings with small limits: 100 KB a file, 250 KB of files a user, 1 MP an image."""
    return settings.model_copy(
        update={
            "app_max_attachment_bytes": 100_000,
            "app_attachment_quota_bytes": 250_000,
            "app_max_image_pixels": 1_000_000,
        }
    )


@pytest.fixture
def small(limited: Settings) -> Iterator[TestClient]:
    """The app with ``limited`` settings."""
    with TestClient(create_app(limited)) as client:
        yield client


# --- uploads ---------------------------------------------------------------------------------


def test_raw_upload_answers_201_with_location_and_the_attachment(
    client: TestClient, settings: Settings, alice: Caller, chat: str
) -> None:
    response = client.post(
        uploads_url(chat),
        content=PDF,
        headers={
            **alice.headers,
            "Content-Type": "application/pdf",
            "Content-Disposition": REPORT_DISPOSITION,
        },
    )
    assert response.status_code == 201, response.text
    found = response.json()
    assert set(found) == {
        "id",
        "user_id",
        "name",
        "media_type",
        "declared_type",
        "type_mismatch",
        "size",
        "sha256",
        "created_at",
        "url",
    }
    assert found["name"] == REPORT_NAME
    assert (found["media_type"], found["declared_type"], found["type_mismatch"]) == (
        "application/pdf",
        "application/pdf",
        False,
    )
    assert (found["size"], found["sha256"], found["user_id"]) == (len(PDF), sha(PDF), alice.id)
    # Where it is served, and what a message's file part names (dal.records.messages).
    assert found["url"] == f"{ATTACHMENT_PATH}{found['id']}" == f"/v1/attachments/{found['id']}"
    assert response.headers["location"] == found["url"]
    assert stored(settings) == (1, 1, len(PDF))

    # The same bytes again, as a form this time: the same attachment, 200, nothing new kept.
    again = client.post(
        uploads_url(chat),
        files={"file": ("copy.pdf", PDF, "application/pdf")},
        headers=alice.headers,
    )
    assert again.status_code == 200, again.text
    assert again.json() == found  # the first upload's name and all
    assert stored(settings) == (1, 1, len(PDF))


def test_raw_upload_takes_its_name_from_filename_or_the_query(
    client: TestClient, alice: Caller, chat: str
) -> None:
    plain = client.post(
        uploads_url(chat),
        content=b"one",
        headers={
            **alice.headers,
            "Content-Type": "text/plain",
            "Content-Disposition": 'attachment; filename="../../etc/notes \\"1\\".txt"',
        },
    )
    assert plain.status_code == 201, plain.text
    assert plain.json()["name"] == 'notes "1".txt'  # the last path component only
    queried = client.post(
        uploads_url(chat) + "?filename=todo.md",
        content=b"two",
        headers={**alice.headers, "Content-Type": "text/markdown"},
    )
    assert queried.status_code == 201, queried.text
    assert queried.json()["name"] == "todo.md"
    assert queried.json()["media_type"] == "text/markdown"  # text/plain refined by the declared
    nameless = upload(client, alice, chat, b"three", name="")
    assert nameless["name"] == "file"


@pytest.mark.parametrize(
    ("content_type", "declared"),
    [
        ("Image/JPG; quality=high", "image/jpeg"),  # normalized, an alias named as usual
        ("image/*", None),  # a wildcard says nothing
        ("garbage", None),  # no media type
        ("application/" + "x" * 300, None),  # a subtype over 127 characters
    ],
    ids=["alias", "wildcard", "garbage", "too long"],
)
def test_the_declared_type_is_kept_normalized_or_not_at_all(
    client: TestClient, alice: Caller, chat: str, content_type: str, declared: str | None
) -> None:
    raw = client.post(
        uploads_url(chat),
        content=image("JPEG", (16, 16)),
        headers={**alice.headers, "Content-Type": content_type},
    )
    head = f'Content-Disposition: form-data; name="file"\r\nContent-Type: {content_type}'
    form = client.post(
        uploads_url(chat),
        content=multipart("t", (head, image("JPEG", (24, 24)))),  # other bytes: not deduplicated
        headers=form_headers(alice, "t"),
    )
    for response in (raw, form):
        assert response.status_code == 201, response.text
        found = response.json()
        assert (found["media_type"], found["declared_type"], found["type_mismatch"]) == (
            "image/jpeg",
            declared,
            False,
        )


def test_multipart_upload_answers_201(client: TestClient, alice: Caller, chat: str) -> None:
    data = random_bytes(CHUNK_SIZE + 10)
    response = client.post(
        uploads_url(chat),
        data={"caption": "before the file"},
        files={"file": ("données.bin", data, "application/x-thing")},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    found = response.json()
    assert (found["name"], found["size"], found["sha256"]) == ("données.bin", len(data), sha(data))
    assert found["declared_type"] == "application/x-thing"
    back = client.get(file_url(found), headers=alice.headers)
    assert back.status_code == 200 and back.content == data


def test_upload_without_a_content_type_is_415_and_stores_nothing(
    client: TestClient, settings: Settings, alice: Caller, chat: str
) -> None:
    response = client.post(uploads_url(chat), content=b"bytes", headers=alice.headers)
    assert "content-type" not in response.request.headers
    assert_error(response, 415, "unsupported_media_type")
    assert stored(settings) == (0, 0, 0)


def test_multipart_without_a_file_is_422(
    client: TestClient, settings: Settings, alice: Caller, chat: str
) -> None:
    body = multipart("xyz", ('Content-Disposition: form-data; name="caption"', b"no file here"))
    response = client.post(uploads_url(chat), content=body, headers=form_headers(alice, "xyz"))
    assert_error(response, 422)
    assert "file" in response.json()["error"]["message"]
    assert stored(settings) == (0, 0, 0)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n"),  # no boundary
        ("multipart/form-data; boundary=x", b"not a form at all"),
        ("multipart/form-data; boundary=x", b"--y\r\nContent-Disposition: form-data\r\n\r\n"),
    ],
    ids=["no boundary", "garbage", "another boundary"],
)
def test_malformed_multipart_is_400_and_stores_nothing(
    client: TestClient,
    settings: Settings,
    alice: Caller,
    chat: str,
    content_type: str,
    body: bytes,
) -> None:
    response = client.post(
        uploads_url(chat), content=body, headers={**alice.headers, "Content-Type": content_type}
    )
    assert_error(response, 400, "malformed_multipart")
    assert stored(settings) == (0, 0, 0)


def test_truncated_multipart_is_400_and_stores_nothing(
    client: TestClient, settings: Settings, alice: Caller, chat: str
) -> None:
    """The file's bytes arrive (over two chunks: some are stored on the way), but the form
    never ends: the upload is dropped."""
    head = 'Content-Disposition: form-data; name="file"; filename="cut.bin"'
    body = multipart("b0undary", (head, random_bytes(3 * CHUNK_SIZE)), closed=False)
    body = body[: -len(b"\r\n")]  # not even the line break before a next boundary
    response = client.post(uploads_url(chat), content=body, headers=form_headers(alice, "b0undary"))
    assert_error(response, 400, "malformed_multipart")
    assert stored(settings) == (0, 0, 0)


def test_upload_into_a_missing_conversation_is_404(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    assert_error(
        client.post(
            uploads_url(MISSING_ID),
            content=b"x",
            headers={**alice.headers, "Content-Type": "text/plain"},
        ),
        404,
        "not_found",
    )
    assert stored(settings) == (0, 0, 0)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1], ids=lambda n: f"{n}B"
)
def test_bytes_come_back_exactly(client: TestClient, alice: Caller, chat: str, size: int) -> None:
    data = random_bytes(size, seed=size)
    found = upload(client, alice, chat, data)
    assert (found["size"], found["sha256"]) == (size, sha(data))
    response = client.get(file_url(found), headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-length"] == str(size)
    assert response.headers["etag"] == f'"{sha(data)}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert sha(response.content) == sha(data)


def _generated(size: int, piece: int = 64 * 1024, seed: int = 1) -> Iterator[bytes]:
    """``size`` pseudo-random bytes, made as they are sent."""
    generator = random.Random(seed)
    for start in range(0, size, piece):
        yield generator.randbytes(min(piece, size - start))


def test_a_large_file_streams_both_ways_byte_exact(settings: Settings) -> None:
    """About 20 MiB, sent chunked as it is made and read back as it arrives, on a real
    server: neither side ever holds it whole."""
    size = 20 * CHUNK_SIZE + 12_345
    expected = hashlib.sha256()
    for piece in _generated(size):
        expected.update(piece)
    with serving(settings) as base, httpx.Client(base_url=base, timeout=120) as http:
        me = Caller(*make_user(http, "big"))
        chat = http.post("/v1/conversations", json={}, headers=me.headers).json()["id"]
        response = http.post(
            uploads_url(chat),
            content=_generated(size),
            headers={**me.headers, "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        assert response.request.headers.get("transfer-encoding") == "chunked"
        found = response.json()
        assert (found["size"], found["sha256"]) == (size, expected.hexdigest())
        got = hashlib.sha256()
        received = 0
        with http.stream("GET", file_url(found), headers=me.headers) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(size)
            for piece in download.iter_raw():
                got.update(piece)
                received += len(piece)
        assert received == size and got.hexdigest() == expected.hexdigest()


# --- ranges, conditions, HEAD ----------------------------------------------------------------


@pytest.fixture
def big(client: TestClient, alice: Caller, chat: str) -> tuple[Json, bytes]:
    """A file of three chunks and a bit, and its bytes."""
    data = random_bytes(3 * CHUNK_SIZE + 17, seed=3)
    return upload(client, alice, chat, data, name="big.bin"), data


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=-10", 3 * CHUNK_SIZE + 7, 3 * CHUNK_SIZE + 16),
        (f"bytes={CHUNK_SIZE - 10}-{2 * CHUNK_SIZE + 9}", CHUNK_SIZE - 10, 2 * CHUNK_SIZE + 9),
        (f"bytes={2 * CHUNK_SIZE + 5}-", 2 * CHUNK_SIZE + 5, 3 * CHUNK_SIZE + 16),
        ("bytes=5-99999999999", 5, 3 * CHUNK_SIZE + 16),
        ("bytes=-99999999", 0, 3 * CHUNK_SIZE + 16),
    ],
    ids=["first bytes", "suffix", "across chunks", "open-ended", "past the end", "long suffix"],
)
def test_a_range_answers_206_with_those_bytes(
    client: TestClient, alice: Caller, big: tuple[Json, bytes], header: str, first: int, last: int
) -> None:
    found, data = big
    response = client.get(file_url(found), headers={**alice.headers, "Range": header})
    assert response.status_code == 206, response.text
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["etag"] == f'"{found["sha256"]}"'
    assert response.content == data[first : last + 1]


@pytest.mark.parametrize(
    "header", ["bytes=99999999-", "bytes=-0", f"bytes={3 * CHUNK_SIZE + 17}-{4 * CHUNK_SIZE}"]
)
def test_a_range_past_the_end_is_416_with_the_size(
    client: TestClient, alice: Caller, big: tuple[Json, bytes], header: str
) -> None:
    found, data = big
    response = client.get(file_url(found), headers={**alice.headers, "Range": header})
    assert_error(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == f"bytes */{len(data)}"


def test_a_range_not_understood_serves_the_whole_file(
    client: TestClient, alice: Caller, big: tuple[Json, bytes]
) -> None:
    found, data = big
    for header in ["items=0-1", "bytes=5-2", "bytes=abc", "bytes=0-10,5-20"]:
        response = client.get(file_url(found), headers={**alice.headers, "Range": header})
        assert response.status_code == 200, header
        assert "content-range" not in response.headers
        assert response.content == data


def _byteranges(response: httpx.Response) -> list[tuple[str, str, bytes]]:
    """The parts of a multipart/byteranges body: (Content-Type, Content-Range, bytes)."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + response.content)
    assert message.is_multipart()
    return [
        (part["Content-Type"], part["Content-Range"], part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


def test_several_ranges_answer_multipart_byteranges(
    client: TestClient, alice: Caller, big: tuple[Json, bytes]
) -> None:
    found, data = big
    size = len(data)
    asked = [(0, 9), (CHUNK_SIZE - 5, CHUNK_SIZE + 4), (size - 3, size - 1)]
    header = f"bytes=0-9, {CHUNK_SIZE - 5}-{CHUNK_SIZE + 4},-3"
    response = client.get(file_url(found), headers={**alice.headers, "Range": header})
    assert response.status_code == 206, response.text
    assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert "content-range" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    parts = _byteranges(response)
    assert [(kind, got_range) for kind, got_range, _ in parts] == [
        ("application/octet-stream", f"bytes {first}-{last}/{size}") for first, last in asked
    ]
    assert [payload for _, _, payload in parts] == [data[a : b + 1] for a, b in asked]
    # HEAD: the same length, no body.
    head = client.head(file_url(found), headers={**alice.headers, "Range": header})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-length"] == response.headers["content-length"]


def test_if_range_with_another_etag_serves_the_whole_file(
    client: TestClient, alice: Caller, big: tuple[Json, bytes]
) -> None:
    found, data = big
    etag = f'"{found["sha256"]}"'
    for if_range, status in [('"0123"', 200), (f"W/{etag}", 200), (etag, 206)]:
        response = client.get(
            file_url(found), headers={**alice.headers, "Range": "bytes=0-9", "If-Range": if_range}
        )
        assert response.status_code == status, if_range
        assert response.content == (data if status == 200 else data[:10])


def test_head_answers_the_headers_without_the_body(
    client: TestClient, alice: Caller, big: tuple[Json, bytes]
) -> None:
    found, data = big
    get = client.get(file_url(found), headers=alice.headers)
    head = client.head(file_url(found), headers=alice.headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    for name in ("content-type", "etag", "content-disposition", "x-content-type-options"):
        assert head.headers[name] == get.headers[name], name
    ranged = client.head(file_url(found), headers={**alice.headers, "Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == b""
    assert ranged.headers["content-length"] == "10"
    assert ranged.headers["content-range"] == f"bytes 10-19/{len(data)}"


def test_if_none_match_with_the_etag_is_304(client: TestClient, alice: Caller, chat: str) -> None:
    found = upload(client, alice, chat, b"cached bytes", content_type="text/plain")
    etag = f'"{found["sha256"]}"'
    for held in [etag, f"W/{etag}", f'"other", {etag}', f'W/"x",W/{etag}', "*"]:
        response = client.get(file_url(found), headers={**alice.headers, "If-None-Match": held})
        assert response.status_code == 304, held
        assert response.content == b""
        assert response.headers["etag"] == etag
    for held in ['"other"', f'"{found["sha256"][:-1]}"', ""]:
        response = client.get(file_url(found), headers={**alice.headers, "If-None-Match": held})
        assert response.status_code == 200, held
        assert response.content == b"cached bytes"


# --- what a browser may do with a file --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared", "served"),
    [
        (HTML, "image/png", "text/html"),
        (HTML, "text/plain", "text/html"),
        (SVG, "image/svg+xml", "image/svg+xml"),
    ],
    ids=["html as png", "html as text", "svg"],
)
def test_active_content_is_served_as_what_it_is_and_only_downloaded(
    client: TestClient, alice: Caller, chat: str, data: bytes, declared: str, served: str
) -> None:
    found = upload(client, alice, chat, data, name="pic.png", content_type=declared)
    assert found["media_type"] == served
    assert found["type_mismatch"] is (declared != served)
    response = client.get(file_url(found), headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == served
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.content == data


def test_a_png_is_shown_inline_and_a_name_goes_back_as_rfc_6266_says(
    client: TestClient, alice: Caller, chat: str
) -> None:
    found = upload(client, alice, chat, image("PNG"), name="报告 ✓.png", content_type="image/png")
    response = client.get(file_url(found), headers=alice.headers)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == (
        "inline; filename=\"__ _.png\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%E2%9C%93.png"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    report = upload(client, alice, chat, PDF, name=REPORT_NAME, content_type="application/pdf")
    response = client.get(file_url(report), headers=alice.headers)
    assert response.headers["content-disposition"] == (
        "inline; filename=\"__.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"
    )


# --- limits ----------------------------------------------------------------------------------


def _pieces(size: int, piece: int = 10_000) -> Iterator[bytes]:
    for start in range(0, size, piece):
        yield random_bytes(min(piece, size - start), seed=start)


def test_a_declared_length_over_the_limit_is_413(
    small: TestClient, limited: Settings, alice: Caller
) -> None:
    chat = make_conversation(small, alice)["id"]
    data = random_bytes(100_001)
    response = small.post(
        uploads_url(chat), content=data, headers={**alice.headers, "Content-Type": "image/png"}
    )
    assert_error(response, 413, "attachment_too_large")
    assert response.headers["connection"] == "close"
    form = small.post(
        uploads_url(chat),
        files={"file": ("big.bin", random_bytes(200_000), "application/octet-stream")},
        headers=alice.headers,
    )
    assert_error(form, 413, "attachment_too_large")
    assert stored(limited) == (0, 0, 0)
    # At the limit exactly: taken.
    upload(small, alice, chat, data[:100_000])


def test_a_chunked_body_past_the_limit_is_413_and_stores_nothing(
    small: TestClient, limited: Settings, alice: Caller
) -> None:
    chat = make_conversation(small, alice)["id"]
    response = small.post(
        uploads_url(chat),
        content=_pieces(150_000),
        headers={**alice.headers, "Content-Type": "application/octet-stream"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "attachment_too_large")
    # A form whose file passes the limit, though the form's length is not declared either.
    boundary = "limit"
    head = 'Content-Disposition: form-data; name="file"; filename="big.bin"'
    body = multipart(boundary, (head, random_bytes(100_001)))
    form = small.post(
        uploads_url(chat),
        content=iter([body[:50_000], body[50_000:]]),
        headers=form_headers(alice, boundary),
    )
    assert "content-length" not in form.request.headers
    assert_error(form, 413, "attachment_too_large")
    assert stored(limited) == (0, 0, 0)


def test_the_quota_refuses_what_would_pass_it_and_keeps_nothing_of_it(
    settings: Settings, alice: Caller
) -> None:
    quota = settings.model_copy(
        update={
            "app_max_attachment_bytes": 3 * CHUNK_SIZE,
            "app_attachment_quota_bytes": 5 * CHUNK_SIZE,
        }
    )
    with TestClient(create_app(quota)) as client:
        chat = make_conversation(client, alice)["id"]
        first = upload(client, alice, chat, random_bytes(3 * CHUNK_SIZE, seed=1))
        assert stored(quota) == (1, 3, 3 * CHUNK_SIZE)
        # Two chunks fit, the third does not: the two are dropped with the rest.
        response = client.post(
            uploads_url(chat),
            content=random_bytes(CHUNK_SIZE * 5 // 2, seed=2),
            headers={**alice.headers, "Content-Type": "application/octet-stream"},
        )
        error = assert_error(response, 413, "quota_exceeded")
        assert "APP_ATTACHMENT_QUOTA_BYTES" in error["message"]
        assert stored(quota) == (1, 3, 3 * CHUNK_SIZE)
        # What fits still fits; the quota is per user.
        upload(client, alice, chat, random_bytes(2 * CHUNK_SIZE, seed=3))
        bob = Caller(*make_user(client, "bob"))
        other = make_conversation(client, bob)["id"]
        upload(client, bob, other, random_bytes(3 * CHUNK_SIZE, seed=1))
        assert stored(quota) == (3, 8, 8 * CHUNK_SIZE)
        assert client.get(file_url(first), headers=alice.headers).status_code == 200


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=BOUND)


def upload_head(conversation_id: str, caller: Caller, length: int | None) -> bytes:
    """The head of a raw upload: with a Content-Length, or chunked (``length`` None)."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST {uploads_url(conversation_id)} HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: {caller.headers['Authorization']}\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    ).encode()


def _served(settings: Settings, http_parser: str, **limits: Any) -> Settings:
    return settings.model_copy(update={"app_http": http_parser, "db_min_connections": 0, **limits})


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("http_parser", ["httptools", "h11"])
def test_a_slow_body_past_the_limit_is_refused_before_it_ends(
    settings: Settings, http_parser: str, declared: bool
) -> None:
    """8 MiB sent 16 KiB at a time against a limit of 100 kB: the 413 comes once the limit
    is passed (declared: before any of the body), and the server closes the connection
    rather than read the rest."""
    served = _served(settings, http_parser, app_max_attachment_bytes=100_000)
    total, piece = 8 * 1024 * 1024, b"s" * 16 * 1024
    with serving(served) as base, httpx.Client(base_url=base) as http:
        me = Caller(*make_user(http, "slow"))
        chat = http.post("/v1/conversations", json={}, headers=me.headers).json()["id"]
        with connect(base) as sock:
            sock.sendall(upload_head(chat, me, total if declared else None))
            answer, answered_at, sent = b"", None, 0
            if declared:  # the answer comes without a byte of the body
                sock.settimeout(BOUND)
                answer, answered_at = sock.recv(65536), 0
            sock.settimeout(0.02)
            started = time.monotonic()
            while sent < total and time.monotonic() - started < 4 * BOUND:
                try:
                    sock.sendall(piece if declared else b"4000\r\n" + piece + b"\r\n")
                    sent += len(piece)
                    more = sock.recv(65536)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                if not more:
                    break  # closed by the server
                answer += more
                answered_at = sent if answered_at is None else answered_at
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"attachment_too_large" in answer
    assert answered_at is not None and answered_at < 1024 * 1024, answered_at
    assert sent < total / 2, f"the server read {sent} bytes of the body after its 413"
    assert b"connection: close" in answer.lower()
    assert stored(served) == (0, 0, 0)


def test_uploads_past_the_concurrent_limit_are_503_until_one_ends(settings: Settings) -> None:
    """APP_MAX_CONCURRENT_UPLOADS=1: while one upload is arriving, another is refused at once
    (503 too_many_uploads, Retry-After, nothing stored); once it has ended, uploads go on."""
    served = _served(settings, "httptools", app_max_concurrent_uploads=1)
    body = random_bytes(300_000, seed=7)
    with serving(served) as base, httpx.Client(base_url=base, timeout=BOUND) as http:
        me = Caller(*make_user(http, "busy"))
        chat = http.post("/v1/conversations", json={}, headers=me.headers).json()["id"]
        with connect(base) as sock:
            sock.sendall(upload_head(chat, me, len(body)) + body[:100_000])
            time.sleep(0.5)  # the first upload holds its slot, waiting for the rest
            refused = http.post(
                uploads_url(chat),
                content=b"second",
                headers={**me.headers, "Content-Type": "text/plain"},
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "too_many_uploads"
            assert int(refused.headers["retry-after"]) >= 1
            sock.sendall(body[100_000:])
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
        again = http.post(
            uploads_url(chat),
            content=b"third",
            headers={**me.headers, "Content-Type": "text/plain"},
        )
        assert again.status_code == 201, again.text
    assert stored(served)[0] == 2


@pytest.mark.parametrize("http_parser", ["httptools", "h11"])
def test_an_upload_refused_before_its_body_is_read_closes_the_connection(
    settings: Settings, http_parser: str
) -> None:
    """Into a conversation of someone else's (404, before a byte of the body is read): the
    answer comes at once and the server reads no more of the 8 MiB announced."""
    served = _served(settings, http_parser)
    total, piece = 8 * 1024 * 1024, b"r" * 16 * 1024
    with serving(served) as base, httpx.Client(base_url=base) as http:
        owner = Caller(*make_user(http, "owner"))
        chat = http.post("/v1/conversations", json={}, headers=owner.headers).json()["id"]
        stranger = Caller(*make_user(http, "stranger"))
        with connect(base) as sock:
            sock.sendall(upload_head(chat, stranger, total))
            sock.settimeout(BOUND)
            answer = sock.recv(65536)
            sent, started = 0, time.monotonic()
            try:
                while sent < total and time.monotonic() - started < 4 * BOUND:
                    sock.sendall(piece)
                    sent += len(piece)
                    time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                pass
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:300]
    assert sent < total / 2, f"the server read {sent} bytes of a refused upload"
    assert b"connection: close" in answer.lower()
    assert stored(served) == (0, 0, 0)


def _until(condition: Any, what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("gone", ["closed", "stalled"])
@pytest.mark.parametrize("http_parser", ["httptools", "h11"])
def test_a_client_gone_mid_upload_leaves_nothing(
    settings: Settings, http_parser: str, gone: str
) -> None:
    """3 MiB of the 20 announced, then the client closes the connection, or sends nothing
    more (cut off by the server after APP_BODY_TIMEOUT, 1 s here, with a 408)."""
    served = _served(settings, http_parser, app_body_timeout=1.0)
    with serving(served) as base, httpx.Client(base_url=base) as http:
        me = Caller(*make_user(http, "gone"))
        chat = http.post("/v1/conversations", json={}, headers=me.headers).json()["id"]
        with connect(base) as sock:
            sock.sendall(upload_head(chat, me, 20 * CHUNK_SIZE))
            sock.sendall(random_bytes(3 * CHUNK_SIZE + 5))
            # Chunks are stored as they come: the upload is under way.
            _until(lambda: stored(served)[1] >= 2, "no chunk stored")
            assert stored(served)[0] == 1
            if gone == "stalled":
                sock.settimeout(BOUND)
                answer = b""
                try:
                    while more := sock.recv(65536):
                        answer += more
                except ConnectionResetError:
                    pass
                if answer:  # or the reset overtook it
                    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
        _until(lambda: stored(served) == (0, 0, 0), f"left behind: {stored(served)}")
        # The server still serves, and the user may upload again.
        upload(http, me, chat, b"after")


# --- who may read a file ---------------------------------------------------------------------


def thumbnail_url(attachment: Json) -> str:
    return f"/v1/attachments/{attachment['id']}/thumbnail"


def readable(client: TestClient, caller: Caller, attachment: Json) -> tuple[int, int, int]:
    """The statuses of the file, its HEAD and its thumbnail, for ``caller``."""
    return (
        client.get(file_url(attachment), headers=caller.headers).status_code,
        client.head(file_url(attachment), headers=caller.headers).status_code,
        client.get(thumbnail_url(attachment), headers=caller.headers).status_code,
    )


def test_another_user_finds_nothing(
    client: TestClient, alice: Caller, bob: Caller, chat: str
) -> None:
    found = upload(client, alice, chat, image("PNG"), content_type="image/png")
    assert readable(client, alice, found) == (200, 200, 200)
    assert readable(client, bob, found) == (404, 404, 404)
    assert_error(client.get(file_url(found), headers=bob.headers), 404, "not_found")
    assert_error(client.get(f"/v1/attachments/{MISSING_ID}", headers=alice.headers), 404)
    # Into a conversation of someone else's: as if it did not exist.
    assert_error(
        client.post(
            uploads_url(chat), content=b"x", headers={**bob.headers, "Content-Type": "text/plain"}
        ),
        404,
        "not_found",
    )


def test_members_read_the_files_its_messages_reference_while_they_are_members(
    client: TestClient, alice: Caller, bob: Caller, chat: str
) -> None:
    carol = Caller(*make_user(client, "carol"))
    for member in (bob, carol):
        add_member(client, alice, chat, member)
    found = upload(client, alice, chat, image("JPEG"), content_type="image/jpeg")
    unsent = upload(client, alice, chat, b"never sent", content_type="text/plain")
    assert readable(client, bob, found) == (404, 404, 404)  # uploaded, not yet sent
    send(client, alice, chat, found)
    assert readable(client, bob, found) == (200, 200, 200)
    assert client.get(file_url(found), headers=bob.headers).content == image("JPEG")
    assert client.get(file_url(unsent), headers=bob.headers).status_code == 404
    # Bob's own upload, never sent: his alone, even in the conversation's owner's eyes.
    his = upload(client, bob, chat, image("GIF"), content_type="image/gif")
    assert readable(client, bob, his) == (200, 200, 200)
    assert readable(client, alice, his) == (404, 404, 404)
    # Bob leaves (removed by the owner): no longer his to read; carol still reads it.
    removed = client.delete(f"/v1/conversations/{chat}/members/{bob.id}", headers=alice.headers)
    assert removed.status_code == 204, removed.text
    assert readable(client, bob, found) == (404, 404, 404)
    assert readable(client, carol, found) == (200, 200, 200)


def test_a_message_may_reference_only_a_file_its_sender_may_read(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller, chat: str
) -> None:
    found = upload(client, alice, chat, b"alice's", content_type="text/plain")
    bobs_chat = make_conversation(client, bob)["id"]
    add_member(client, bob, bobs_chat, alice)
    messages_before = sql(settings, "SELECT count(*) FROM messages")[0][0]
    for part in [
        file_part(found),
        file_part(found, url=f"https://mnemo.example/v1/attachments/{found['id']}?x=1"),
        {"type": "file", "mediaType": "text/plain", "url": "x:", "attachmentId": found["id"]},
        file_part({**found, "id": MISSING_ID, "url": f"/v1/attachments/{MISSING_ID}"}),
    ]:
        response = client.post(
            messages_url(bobs_chat),
            json={"role": "user", "parts": [text_part("mine now"), part]},
            headers=bob.headers,
        )
        error = assert_error(response, 404, "not_found")
        assert "attachment" in error["message"]
        # Nor by an edit of his own message.
        own = append(client, bob, bobs_chat, "plain")
        edited = client.patch(
            f"{messages_url(bobs_chat)}/{own['id']}",
            json={"parts": [text_part("edited"), part]},
            headers=bob.headers,
        )
        assert_error(edited, 404, "not_found")
        sql(settings, "DELETE FROM messages WHERE id = %s", own["id"])
    assert sql(settings, "SELECT count(*) FROM messages")[0][0] == messages_before
    assert sql(settings, "SELECT count(*) FROM message_attachments")[0][0] == 0
    # Alice may: she sends it into bob's conversation, where bob then reads it (and may
    # pass it on: he reads it now).
    send(client, alice, bobs_chat, found)
    assert client.get(file_url(found), headers=bob.headers).status_code == 200
    send(client, bob, bobs_chat, found)


def test_a_role_without_the_right_is_refused(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller, chat: str
) -> None:
    """The checks read conversation_rights: a member without 'append' uploads nothing (403),
    one without 'read' lists nothing (403) and reads none of its files (404)."""
    add_member(client, alice, chat, bob)
    found = upload(client, alice, chat, b"shared", content_type="text/plain")
    message = send(client, alice, chat, found)
    sql(settings, "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'append'")
    refused = client.post(
        uploads_url(chat), content=b"x", headers={**bob.headers, "Content-Type": "text/plain"}
    )
    assert_error(refused, 403, "forbidden")
    assert stored(settings)[0] == 1
    assert client.get(file_url(found), headers=bob.headers).status_code == 200
    sql(settings, "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'read'")
    assert_error(client.get(uploads_url(chat), headers=bob.headers), 403, "forbidden")
    of_message = f"{messages_url(chat)}/{message['id']}/attachments"
    assert_error(client.get(of_message, headers=bob.headers), 403, "forbidden")
    assert readable(client, bob, found) == (404, 404, 404)


# --- thumbnails ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP", "GIF"])
def test_the_thumbnail_of_an_image(client: TestClient, alice: Caller, chat: str, kind: str) -> None:
    found = upload(client, alice, chat, image(kind), content_type=f"image/{kind.lower()}")
    assert found["media_type"] == f"image/{kind.lower()}"
    response = client.get(thumbnail_url(found), headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] in ("image/webp", "image/jpeg")
    assert response.headers["x-content-type-options"] == "nosniff"
    with Image.open(io.BytesIO(response.content)) as thumbnail:
        assert thumbnail.format == response.headers["content-type"].split("/")[1].upper()
        assert thumbnail.size == (256, 192)  # 640x480, its long side 256
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(thumbnail_url(found), headers={**alice.headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = client.get(thumbnail_url(found), headers={**alice.headers, "If-None-Match": '"x"'})
    assert other.status_code == 200 and other.content == response.content
    # Made once, kept.
    assert client.get(thumbnail_url(found), headers=alice.headers).content == response.content


def test_a_decompression_bomb_gets_no_thumbnail(
    small: TestClient, limited: Settings, alice: Caller
) -> None:
    """6000x6000 pixels (36 MP, over the 1 MP allowed) in a PNG of a few kilobytes."""
    chat = make_conversation(small, alice)["id"]
    buffer = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buffer, "PNG")
    bomb = buffer.getvalue()
    assert len(bomb) < 20_000
    found = upload(small, alice, chat, bomb, name="bomb.png", content_type="image/png")
    assert found["media_type"] == "image/png"
    for _ in range(2):  # refused, and the refusal kept
        error = assert_error(
            small.get(thumbnail_url(found), headers=alice.headers), 422, "image_refused"
        )
        assert "6000x6000" in error["message"]
    [(refused,)] = sql(limited, "SELECT refused FROM attachment_thumbnails")
    assert "APP_MAX_IMAGE_PIXELS" in refused
    # The file itself is served as any other.
    assert small.get(file_url(found), headers=alice.headers).content == bomb


def test_a_corrupt_image_gets_no_thumbnail(client: TestClient, alice: Caller, chat: str) -> None:
    jpeg = image("JPEG")
    corrupt = jpeg[:300] + bytes(range(256)) * 8
    found = upload(client, alice, chat, corrupt, name="broken.jpg", content_type="image/jpeg")
    assert found["media_type"] == "image/jpeg"
    assert_error(client.get(thumbnail_url(found), headers=alice.headers), 422, "image_refused")


@pytest.mark.parametrize(
    ("data", "declared"),
    [(PDF, "application/pdf"), (b"plain text\n", "text/plain"), (SVG, "image/svg+xml")],
    ids=["pdf", "text", "svg"],
)
def test_a_file_that_is_no_image_has_no_thumbnail(
    client: TestClient, alice: Caller, chat: str, data: bytes, declared: str
) -> None:
    found = upload(client, alice, chat, data, content_type=declared)
    assert_error(client.get(thumbnail_url(found), headers=alice.headers), 404, "not_found")


# --- lists -----------------------------------------------------------------------------------


def test_the_files_of_a_conversation_and_of_a_message(
    client: TestClient, alice: Caller, bob: Caller, chat: str
) -> None:
    a, b, c = (
        upload(
            client, alice, chat, f"file {n}".encode(), name=f"{n}.txt", content_type="text/plain"
        )
        for n in "abc"
    )
    first = send(client, alice, chat, b, a)
    plain = append(client, alice, chat, "no files")
    second = send(client, alice, chat, c)
    third = send(client, alice, chat, a)
    expected = [
        *((first, f) for f in sorted([a, b], key=lambda f: f["id"])),
        (second, c),
        (third, a),
    ]

    def item(message: Json, found: Json) -> Json:
        return {**found, "message_id": message["id"], "seq": message["seq"]}

    listed, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(uploads_url(chat), params=params, headers=alice.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        listed += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert listed == [item(m, f) for m, f in expected]
    assert pages == 2

    of_message = client.get(
        f"{messages_url(chat)}/{first['id']}/attachments", headers=alice.headers
    )
    assert of_message.status_code == 200, of_message.text
    assert of_message.json() == {"items": [item(m, f) for m, f in expected[:2]]}
    none = client.get(f"{messages_url(chat)}/{plain['id']}/attachments", headers=alice.headers)
    assert none.json() == {"items": []}
    missing = client.get(f"{messages_url(chat)}/{MISSING_ID}/attachments", headers=alice.headers)
    assert_error(missing, 404, "not_found")
    assert_error(client.get(uploads_url(chat), headers=bob.headers), 404, "not_found")
    assert_error(
        client.get(f"{messages_url(chat)}/{first['id']}/attachments", headers=bob.headers), 404
    )
    bad = client.get(
        uploads_url(chat), params={"cursor": "bm90LWEtY3Vyc29y"}, headers=alice.headers
    )
    assert_error(bad, 422)
    empty = make_conversation(client, alice)["id"]
    response = client.get(uploads_url(empty), headers=alice.headers)
    assert response.json() == {"items": [], "next_cursor": None}


# --- garbage collection ----------------------------------------------------------------------


def test_mnemo_attachments_gc_collects_what_no_message_references(
    client: TestClient, settings: Settings, alice: Caller, chat: str
) -> None:
    kept = upload(client, alice, chat, random_bytes(CHUNK_SIZE + 1, seed=7))
    send(client, alice, chat, kept)
    orphan = random_bytes(2 * CHUNK_SIZE + 3, seed=8)
    gone = upload(client, alice, chat, orphan)
    env = {"DATABASE_URL": str(settings.database_url)}
    total = stored(settings)
    assert total == (2, 5, CHUNK_SIZE + 1 + len(orphan))

    within_grace = mnemo("attachments", "gc", env=env)  # the default grace: a day
    assert within_grace.returncode == 0, within_grace.stderr
    assert json.loads(within_grace.stdout)["attachments"] == 0

    dry = mnemo("attachments", "gc", "--grace", "0", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "attachments": 1,
        "bytes": len(orphan),
        "dry_run": True,
        "grace_seconds": 0,
    }
    assert stored(settings) == total

    done = mnemo("attachments", "gc", "--grace", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "attachments": 1,
        "bytes": len(orphan),
        "dry_run": False,
        "grace_seconds": 0,
    }
    assert "collected 1 files" in done.stderr
    assert stored(settings) == (1, 2, CHUNK_SIZE + 1)
    assert client.get(file_url(kept), headers=alice.headers).status_code == 200
    assert client.get(file_url(gone), headers=alice.headers).status_code == 404
    again = mnemo("attachments", "gc", "--grace", "0", env=env)
    assert json.loads(again.stdout)["attachments"] == 0


def test_mnemo_attachments_gc_refuses_a_negative_grace(settings: Settings) -> None:
    done = mnemo(
        "attachments", "gc", "--grace", "-1", env={"DATABASE_URL": str(settings.database_url)}
    )
    assert done.returncode == 2
    assert "--grace" in done.stderr and done.stdout == ""


def test_a_file_is_shared_only_while_a_message_references_it(
    client: TestClient, alice: Caller, bob: Caller, chat: str
) -> None:
    """Edited out of a message, a file is still shared (the earlier version, which members
    read, holds it); once the message is retracted, the members lose it, its uploader keeps
    it."""
    add_member(client, alice, chat, bob)
    found = upload(client, alice, chat, b"for a while", content_type="text/plain")
    message = send(client, alice, chat, found)
    edited = client.patch(
        f"{messages_url(chat)}/{message['id']}",
        json={"parts": [text_part("no file after all")]},
        headers=alice.headers,
    )
    assert edited.status_code == 200, edited.text
    assert client.get(file_url(found), headers=bob.headers).status_code == 200
    retracted = client.post(f"{messages_url(chat)}/{message['id']}/retract", headers=alice.headers)
    assert retracted.status_code == 200, retracted.text
    assert client.get(file_url(found), headers=bob.headers).status_code == 404
    assert client.get(file_url(found), headers=alice.headers).status_code == 200
    assert client.get(uploads_url(chat), headers=alice.headers).json()["items"] == []
