"""Bad input of every kind gets a clear 4xx in the error shape, never a 500, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    ADMIN,
    MISSING_ID,
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    count_rows,
    get_conversation,
    list_conversations,
    list_messages,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)

JSON = {"content-type": "application/json"}


def _tables(settings: Settings) -> dict[str, int]:
    """How many rows each table holds, straight from the database."""
    tables = ("users", "api_tokens", "conversations", "messages", "tasks")
    tables += ("conversation_events", "task_events")
    return {t: count_rows(settings, f"SELECT count(*) FROM {t}") for t in tables}


@pytest.fixture
def writes(client: TestClient, alice: Caller) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, headers) of every route that reads a JSON body, on rows that exist."""
    conversation = make_conversation(client, alice)
    message = append(client, alice, conversation["id"], status="streaming")
    conv = f"/v1/conversations/{conversation['id']}"
    task = client.post("/v1/tasks", json={"kind": "research"}, headers=alice.headers).json()
    return [
        ("POST", "/v1/users", ADMIN),
        ("PATCH", f"/v1/users/{alice.id}", ADMIN),
        ("PATCH", "/v1/me", alice.headers),
        ("POST", "/v1/tokens", alice.headers),
        ("POST", "/v1/conversations", alice.headers),
        ("PATCH", conv, alice.headers),
        ("POST", f"{conv}/messages", alice.headers),
        ("PATCH", f"{conv}/messages/{message['id']}", alice.headers),
        ("POST", f"{conv}/events", alice.headers),
        ("POST", f"/v1/tasks/{task['id']}/events", alice.headers),
        ("POST", "/v1/auth/login", {}),
        ("POST", "/v1/auth/refresh", {}),
        ("POST", "/v1/auth/logout", {}),
        ("POST", "/v1/auth/signup", {}),
        ("POST", "/v1/auth/password", alice.headers),
        ("PUT", f"/v1/users/{alice.id}/password", ADMIN),
    ]


# --- the HTTP layer ---------------------------------------------------------------------


def test_unknown_path_is_404_in_error_shape(client: TestClient) -> None:
    for path in ("/", "/v1", "/v2/conversations", "/v1/nope", "/health/x"):
        assert_error(client.get(path), 404, "not_found")


def test_wrong_method_is_405_in_error_shape(client: TestClient, alice: Caller) -> None:
    for method, path in [
        ("PUT", "/v1/conversations"),
        ("DELETE", "/v1/conversations"),
        ("GET", "/v1/users"),
        ("POST", "/v1/me"),
        ("PUT", "/v1/tokens"),
        ("POST", "/health"),
        ("PUT", f"/v1/conversations/{MISSING_ID}"),
        ("POST", "/v1/admin/stats"),
    ]:
        response = client.request(method, path, headers=alice.headers)
        assert_error(response, 405, "method_not_allowed")
        assert "allow" in response.headers


def test_malformed_json_is_400_and_stores_nothing(
    client: TestClient, settings: Settings, writes: list[tuple[str, str, dict[str, str]]]
) -> None:
    before = _tables(settings)
    bodies = [b"{", b'{"title": }', b"{'title': 'x'}", b'{"a": 1,}', b"\xff\xfe", b"nul\x00l"]

    for method, path, headers in writes:
        for body in bodies:
            response = client.request(method, path, content=body, headers={**headers, **JSON})
            assert_error(response, 400, "malformed_json")

    assert _tables(settings) == before


def test_body_that_is_not_an_object_is_422(
    client: TestClient, settings: Settings, writes: list[tuple[str, str, dict[str, str]]]
) -> None:
    before = _tables(settings)

    for method, path, headers in writes:
        for body in (b"[]", b'[{"title": "x"}]', b'"text"', b"42", b"true", b"null"):
            response = client.request(method, path, content=body, headers={**headers, **JSON})
            assert_error(response, 422, "invalid_input")

    assert _tables(settings) == before


def test_body_that_is_not_json_is_415(
    client: TestClient, settings: Settings, writes: list[tuple[str, str, dict[str, str]]]
) -> None:
    before = _tables(settings)
    for method, path, headers in writes:
        for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "json"):
            sent = (
                dict(headers) if content_type is None else {**headers, "content-type": content_type}
            )
            response = client.request(method, path, content=b'{"title": "x"}', headers=sent)
            assert_error(response, 415, "unsupported_media_type")

    assert _tables(settings) == before


def test_json_content_type_variants_are_accepted(client: TestClient, alice: Caller) -> None:
    for content_type in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ):
        response = client.post(
            "/v1/conversations",
            content=b'{"title": "x"}',
            headers={**alice.headers, "content-type": content_type},
        )
        assert response.status_code == 201, (content_type, response.text)


def test_required_body_missing_is_rejected(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)

    missing = client.post(messages_url(conversation["id"]), headers=alice.headers)
    assert_error(missing, 415, "unsupported_media_type")
    empty = client.post(
        messages_url(conversation["id"]), content=b"", headers={**alice.headers, **JSON}
    )
    assert_error(empty, 400, "malformed_json")
    assert get_conversation(client, alice, conversation["id"])["message_count"] == 0


# --- body size --------------------------------------------------------------------------


@pytest.fixture
def small_client(settings: Settings) -> Iterator[TestClient]:
    """The app with APP_MAX_BODY_BYTES = 100."""
    with TestClient(create_app(settings.model_copy(update={"app_max_body_bytes": 100}))) as client:
        yield client


def test_body_over_the_limit_is_413_and_stores_nothing(
    small_client: TestClient, settings: Settings
) -> None:
    _, token = make_user(small_client, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    before = _tables(settings)
    big = {"title": "x" * 200}

    response = small_client.post("/v1/conversations", json=big, headers=headers)

    assert_error(response, 413, "body_too_large")
    assert _tables(settings) == before
    at_limit = json.dumps({"title": "x" * (100 - len('{"title": ""}'))}).encode()
    assert len(at_limit) == 100
    ok = small_client.post("/v1/conversations", content=at_limit, headers={**headers, **JSON})
    assert ok.status_code == 201, ok.text


def test_body_over_the_limit_without_content_length_is_413(
    small_client: TestClient, settings: Settings
) -> None:
    _, token = make_user(small_client, "alice")
    before = _tables(settings)

    def chunks() -> Iterator[bytes]:
        yield b'{"title": "'
        for _ in range(20):
            yield b"x" * 10
        yield b'"}'

    response = small_client.post(
        "/v1/conversations",
        content=chunks(),
        headers={"Authorization": f"Bearer {token}", **JSON},
    )

    assert "content-length" not in response.request.headers
    assert_error(response, 413, "body_too_large")
    assert _tables(settings) == before


def test_body_over_the_limit_is_413_on_every_body_route(
    small_client: TestClient, settings: Settings
) -> None:
    user, token = make_user(small_client, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    conversation = small_client.post("/v1/conversations", headers=headers).json()
    task = small_client.post("/v1/tasks", json={"kind": "k"}, headers=headers).json()
    before = _tables(settings)
    conv = f"/v1/conversations/{conversation['id']}"
    big = {"metadata": {"x": "y" * 200}}

    for method, path, sent in [
        ("POST", "/v1/users", ADMIN),
        ("PATCH", f"/v1/users/{user['id']}", ADMIN),
        ("PATCH", "/v1/me", headers),
        ("POST", "/v1/tokens", headers),
        ("PATCH", conv, headers),
        ("POST", f"{conv}/messages", headers),
        ("PATCH", f"{conv}/messages/{MISSING_ID}", headers),
        ("POST", f"{conv}/events", headers),
        ("POST", f"/v1/tasks/{task['id']}/events", headers),
        ("POST", "/v1/auth/login", {}),
        ("POST", "/v1/auth/refresh", {}),
        ("POST", "/v1/auth/logout", {}),
        ("POST", "/v1/auth/signup", {}),
        ("POST", "/v1/auth/password", headers),
        ("PUT", f"/v1/users/{user['id']}/password", ADMIN),
    ]:
        response = small_client.request(method, path, json=big, headers=sent)
        assert_error(response, 413, "body_too_large")

    assert _tables(settings) == before


# --- validation -------------------------------------------------------------------------


def test_validation_error_lists_every_field_with_message_and_type(
    client: TestClient, alice: Caller
) -> None:
    response = client.post(
        "/v1/conversations",
        json={"title": 1, "tags": ["ok", 2], "extra": True},
        headers=alice.headers,
    )

    error = assert_error(response, 422, "validation_error")
    details = error["details"]
    assert {d["field"] for d in details} == {"title", "tags.1", "extra"}
    for detail in details:
        assert set(detail) == {"field", "message", "type"}
        assert detail["message"] and detail["type"]
    assert error["message"].startswith(details[0]["field"] + ": ")


# --- the NUL character ------------------------------------------------------------------

NUL = "\u0000"


def test_nul_character_anywhere_is_422_and_stores_nothing(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    conversation = make_conversation(client, alice, title="clean")
    message = append(client, alice, conversation["id"], "clean", status="streaming")
    conv = f"/v1/conversations/{conversation['id']}"
    msg = f"{conv}/messages/{message['id']}"
    me = client.get("/v1/me", headers=alice.headers).json()
    before = _tables(settings)
    cases: list[tuple[str, str, dict[str, str], Json]] = [
        ("POST", "/v1/users", ADMIN, {"username": f"eve{NUL}"}),
        ("POST", "/v1/users", ADMIN, {"username": "eve", "display_name": f"E{NUL}"}),
        ("POST", "/v1/users", ADMIN, {"username": "eve", "metadata": {f"k{NUL}": 1}}),
        ("PATCH", f"/v1/users/{alice.id}", ADMIN, {"avatar_url": f"x{NUL}"}),
        ("PATCH", "/v1/me", alice.headers, {"display_name": NUL}),
        ("PATCH", "/v1/me", alice.headers, {"metadata": {"k": [f"{NUL}"]}}),
        ("POST", "/v1/tokens", alice.headers, {"name": f"ci{NUL}"}),
        ("POST", "/v1/conversations", alice.headers, {"title": f"a{NUL}b"}),
        ("POST", "/v1/conversations", alice.headers, {"tags": [f"{NUL}"]}),
        ("POST", "/v1/conversations", alice.headers, {"metadata": {"k": {"deep": NUL}}}),
        ("PATCH", conv, alice.headers, {"title": f"x{NUL}"}),
        ("PATCH", conv, alice.headers, {"metadata": {NUL: "v"}}),
        ("POST", f"{conv}/messages", alice.headers, {"role": "user", "parts": [text_part(NUL)]}),
        (
            "POST",
            f"{conv}/messages",
            alice.headers,
            {"role": "user", "parts": [{"type": "data-x", "data": {"v": f"a{NUL}"}}]},
        ),
        (
            "POST",
            f"{conv}/messages",
            alice.headers,
            {"role": "user", "parts": [], "metadata": {"k": NUL}},
        ),
        ("PATCH", msg, alice.headers, {"append_parts": [text_part(f"more{NUL}")]}),
        ("PATCH", msg, alice.headers, {"parts": [text_part(NUL)]}),
        ("PATCH", msg, alice.headers, {"metadata": {"k": NUL}}),
    ]

    for method, path, headers, body in cases:
        response = client.request(method, path, json=body, headers=headers)
        error = assert_error(response, 422)
        assert "NUL" in error["message"], (method, path, body)

    assert _tables(settings) == before
    assert get_conversation(client, alice, conversation["id"])["title"] == "clean"
    assert list_messages(client, alice, conversation["id"])["items"] == [message]
    assert client.get("/v1/me", headers=alice.headers).json() == me


def test_escaped_backslash_before_u0000_is_plain_text(client: TestClient, alice: Caller) -> None:
    title = "C:\\u0000 is not a NUL"  # backslash, then the characters u0000

    conversation = make_conversation(client, alice, title=title)

    assert get_conversation(client, alice, conversation["id"])["title"] == title


# --- hostile values ---------------------------------------------------------------------


def test_numbers_jsonb_cannot_hold_are_422_and_store_nothing(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    conversation = make_conversation(client, alice)
    before = _tables(settings)
    cid = conversation["id"]
    raw_bodies = [
        ("/v1/conversations", b'{"metadata": {"n": 99999999999999999999}}'),
        ("/v1/conversations", b'{"metadata": {"n": -99999999999999999999}}'),
        ("/v1/conversations", b'{"metadata": {"n": NaN}}'),
        ("/v1/conversations", b'{"metadata": {"n": Infinity}}'),
        ("/v1/conversations", b'{"metadata": {"n": -Infinity}}'),
        ("/v1/conversations", b'{"metadata": {"n": 1e400}}'),
        (
            messages_url(cid),
            b'{"role": "user", "parts": [{"type": "data-n", "data": 123456789012345678901234}]}',
        ),
        (messages_url(cid), b'{"role": "user", "parts": [], "metadata": {"n": [NaN]}}'),
    ]

    for path, body in raw_bodies:
        response = client.post(path, content=body, headers={**alice.headers, **JSON})
        assert_error(response, 422)

    assert _tables(settings) == before


def test_large_and_precise_numbers_round_trip(client: TestClient, alice: Caller) -> None:
    metadata = {
        "int64_max": 9223372036854775807,
        "int64_min": -9223372036854775808,
        "float": 1.5e300,
        "tiny": 5e-324,
        "neg_zero": -0.0,
        "pi": 3.141592653589793,
    }

    conversation = make_conversation(client, alice, metadata=metadata)

    assert get_conversation(client, alice, conversation["id"])["metadata"] == metadata


def test_deeply_nested_metadata_round_trips_or_is_refused_cleanly(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    nested: object = "bottom"
    for i in range(40):  # with the metadata object, 61 levels: within APP_MAX_JSON_DEPTH (64)
        nested = {f"k{i}": [nested]} if i % 2 else {f"k{i}": nested}
    conversation = make_conversation(client, alice, metadata={"deep": nested})
    assert get_conversation(client, alice, conversation["id"])["metadata"] == {"deep": nested}

    before = _tables(settings)
    for depth in (1_000, 100_000):
        body = b'{"metadata": {"a": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}}"
        response = client.post("/v1/conversations", content=body, headers={**alice.headers, **JSON})
        assert 400 <= response.status_code < 500, response.text
        assert_error(response, response.status_code)
    assert _tables(settings) == before


def test_unicode_round_trips_everywhere(client: TestClient, alice: Caller) -> None:
    text = (
        "emoji 🦊👩‍👩‍👧‍👦🏳️‍🌈, CJK 中文 日本語 한국어, RTL עברית العربية, combining é, ZWJ \u200d, 𝔘"
    )
    conversation = make_conversation(
        client, alice, title=text, tags=["日本", "🏷️"], metadata={text: text, "list": [text]}
    )
    message = append(
        client,
        alice,
        conversation["id"],
        text,
        metadata={"🔑": "値"},
        parts=[text_part(text), {"type": "data-ü", "data": {"ключ": text}}, text_part("二")],
    )

    stored = get_conversation(client, alice, conversation["id"])
    assert stored["title"] == text
    assert stored["tags"] == ["日本", "🏷️"]
    assert stored["metadata"] == {text: text, "list": [text]}
    got = client.get(
        f"{messages_url(conversation['id'])}/{message['id']}", headers=alice.headers
    ).json()
    assert got["parts"] == [
        text_part(text),
        {"type": "data-ü", "data": {"ключ": text}},
        text_part("二"),
    ]
    assert got["content"] == f"{text}\n二"
    assert got["metadata"] == {"🔑": "値"}


def test_lone_surrogate_is_refused_cleanly(client: TestClient, alice: Caller) -> None:
    for body in (b'{"title": "\\ud800"}', b'{"metadata": {"\\udfff": 1}}'):
        response = client.post("/v1/conversations", content=body, headers={**alice.headers, **JSON})
        assert_error(response, 400, "malformed_json")
    assert list_conversations(client, alice)["items"] == []


def test_very_long_values_are_refused_with_422(client: TestClient, alice: Caller) -> None:
    long = "x" * 100_000
    for path, body in [
        ("/v1/conversations", {"title": long}),
        ("/v1/conversations", {"tags": [long]}),
        ("/v1/tokens", {"name": long}),
    ]:
        assert_error(client.post(path, json=body, headers=alice.headers), 422, "validation_error")
    response = client.post("/v1/users", json={"username": long}, headers=ADMIN)
    assert_error(response, 422, "validation_error")
    assert list_conversations(client, alice)["items"] == []


def test_very_long_query_and_path_values_are_refused_cleanly(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)
    long_digits = "9" * 5_000  # over Python's int() digit limit

    for params in ({"limit": long_digits}, {"cursor": "A" * 50_000}):
        response = client.get("/v1/conversations", params=params, headers=alice.headers)
        assert_error(response, 422, "invalid_input")
    for params in ({"before": long_digits}, {"after": "-" + long_digits}):
        response = client.get(
            messages_url(conversation["id"]), params=params, headers=alice.headers
        )
        assert_error(response, 422, "invalid_input")
    assert_error(client.get("/v1/conversations/" + "a" * 5_000, headers=alice.headers), 404)


@pytest.mark.parametrize(
    "template",
    [
        "/v1/users/{}",
        "/v1/users/{}/deactivate",
        "/v1/users/{}/password",
        "/v1/tokens/{}",
        "/v1/conversations/{}",
        "/v1/conversations/{}/messages",
        "/v1/conversations/{}/messages/{}",
        "/v1/conversations/{}/events",
        "/v1/tasks/{}/events",
    ],
)
def test_malformed_uuid_in_path_is_404(client: TestClient, alice: Caller, template: str) -> None:
    conversation = make_conversation(client, alice)
    bad_ids = ["x", "1", "null", "00000000-0000-0000-0000-00000000000g", "{" + MISSING_ID + "}"]

    for bad in bad_ids:
        ids = [bad] * template.count("{}")
        if template.count("{}") == 2:
            ids = [conversation["id"], bad]
        path = template.format(*ids)
        for method in ("GET", "PATCH", "DELETE", "POST"):
            headers = ADMIN if path.startswith("/v1/users") else alice.headers
            response = client.request(method, path, json={}, headers=headers)
            assert_error(response, 404, "not_found")


def test_unstorable_number_error_does_not_echo_the_body(client: TestClient, alice: Caller) -> None:
    big = "9" * 30
    body = ('{"metadata": {"n": ' + big + ', "pad": "' + "x" * 5000 + '"}}').encode()
    response = client.post("/v1/conversations", content=body, headers={**alice.headers, **JSON})
    error = assert_error(response, 422)
    assert big not in error["message"] and "xxxx" not in error["message"]
    assert len(response.content) < 500


@pytest.mark.parametrize("path", ["/v1/me", "/v1/conversations/{cid}"])
def test_empty_patch_is_422_and_changes_nothing(
    client: TestClient, alice: Caller, path: str
) -> None:
    conversation = make_conversation(client, alice)
    url = path.format(cid=conversation["id"])
    before = client.get(url, headers=alice.headers).json()
    # (a null display_name clears it: not an empty patch; metadata is never null)
    for body in ({}, {"title": None} if "conversations" in path else {"metadata": None}):
        assert_error(client.patch(url, json=body, headers=alice.headers), 422)
    assert client.get(url, headers=alice.headers).json() == before


@pytest.mark.parametrize("value", ["1_0", "٣", " 5", "+5", "0x10", "5.0"])
def test_non_ascii_or_decorated_integers_in_query_are_422(
    client: TestClient, alice: Caller, value: str
) -> None:
    conversation = make_conversation(client, alice)
    response = client.get(
        messages_url(conversation["id"]), params={"limit": value}, headers=alice.headers
    )
    assert_error(response, 422)


def test_cursor_with_out_of_range_timestamp_is_422_cursor_invalid(
    client: TestClient, alice: Caller
) -> None:
    import base64

    raw = b'["0001-01-01T00:00:00+14:00", "00000000-0000-7000-8000-000000000000"]'
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = client.get("/v1/conversations", params={"cursor": cursor}, headers=alice.headers)
    assert assert_error(response, 422)["message"] == "cursor is not valid"


# --- headers, paths and methods that Starlette's defaults let through ----------------------


def raw_request(
    client: TestClient,
    method: str,
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """A request sent to the app as raw ASGI, with header bytes as given: the test client
    re-encodes header values as UTF-8, so it cannot send the byte a real client may send (a
    header is Latin-1 to Starlette). Runs in the client's event loop, with its lifespan state."""
    from urllib.parse import unquote

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": client.app_state.copy(),
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    response_headers = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in start["headers"]  # type: ignore[attr-defined]
    }
    content = b"".join(m.get("body", b"") for m in sent[1:])  # type: ignore[misc]
    return start["status"], response_headers, content  # type: ignore[return-value]


@pytest.mark.parametrize("value", [b'"\xb2"', b"\xb3", b'W/"\xb9"', b'"1\xb2"'])
def test_if_match_with_non_ascii_digit_is_400_and_changes_nothing(
    client: TestClient, alice: Caller, value: bytes
) -> None:
    conversation = make_conversation(client, alice, title="kept")
    token = alice.headers["Authorization"].encode()
    status, _, content = raw_request(
        client,
        "PATCH",
        f"/v1/conversations/{conversation['id']}".encode(),
        [(b"authorization", token), (b"content-type", b"application/json"), (b"if-match", value)],
        b'{"title": "changed"}',
    )
    assert status == 400, content
    assert json.loads(content)["error"]["code"] == "bad_if_match"
    assert get_conversation(client, alice, conversation["id"])["title"] == "kept"


@pytest.mark.parametrize("value", [b"\xb2", b"1\xb3", b"9" * 5_000, b"0" * 30 + b"1"])
def test_content_length_odd_digits_never_500(
    client: TestClient, alice: Caller, value: bytes
) -> None:
    body = b'{"display_name": "x"}'
    status, _, content = raw_request(
        client,
        "PATCH",
        b"/v1/me",
        [
            (b"authorization", alice.headers["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", value),
        ],
        body,
    )
    # Too large as declared, or read as it comes (the body is small): never a 500.
    assert status == (413 if value.startswith(b"9") else 200), content


@pytest.mark.parametrize("escape", ["%FF", "%C0%AF", "%C3", "%ED%A0%80", "a%80b"])
def test_path_escape_that_is_not_utf8_is_400_and_stores_nothing(
    client: TestClient, alice: Caller, settings: Settings, escape: str
) -> None:
    # Decoded leniently, each would become the thread "\ufffd" (or "a\ufffdb").
    thread = f"/v1/threads/{escape}"
    body = {"values": {"x": 1}}
    assert_error(
        client.put(thread + "/state", json=body, headers=alice.headers), 400, "malformed_path"
    )
    for method in ("GET", "DELETE"):
        response = client.request(method, thread, headers=alice.headers)
        assert_error(response, 400, "malformed_path")
    assert_error(client.get(f"/v1/conversations/{escape}", headers=alice.headers), 400)
    assert count_rows(settings, "SELECT count(*) FROM threads") == 0


def test_nul_in_path_or_query_is_400(client: TestClient, alice: Caller, settings: Settings) -> None:
    response = client.put("/v1/threads/a%00b/state", json={"values": {}}, headers=alice.headers)
    assert_error(response, 400, "malformed_path")
    response = client.get("/v1/threads", params={"cursor": "\x00"}, headers=alice.headers)
    assert_error(response, 400, "malformed_query")
    assert count_rows(settings, "SELECT count(*) FROM threads") == 0


def test_query_escape_that_is_not_utf8_is_400(client: TestClient, alice: Caller) -> None:
    response = client.get("/v1/threads/t/state?checkpoint_ns=%FF", headers=alice.headers)
    assert_error(response, 400, "malformed_query")
    response = client.get('/v1/threads/t/history?metadata={"a":"%C0"}', headers=alice.headers)
    assert_error(response, 400, "malformed_query")


def test_path_escapes_of_valid_utf8_still_name_their_thread(
    client: TestClient, alice: Caller
) -> None:
    # U+FFFD itself, sent properly encoded, is an ordinary thread id.
    for thread_id, escaped in [("café", "caf%C3%A9"), ("\ufffd", "%EF%BF%BD"), ("a b", "a%20b")]:
        url = f"/v1/threads/{escaped}/state"
        response = client.put(url, json={"values": {"n": 1}}, headers=alice.headers)
        assert response.status_code == 201, response.text
        assert response.json()["thread_id"] == thread_id
        assert client.get(url, headers=alice.headers).json()["thread_id"] == thread_id


@pytest.mark.parametrize(
    "path",
    [
        "/v1/threads/%2F",
        "/v1/threads/%2F/state",
        "/v1/me/",
        "/v1/conversations/",
        "//v1/me",
        "/v1/threads//state",
        "/health/",
        "/v1/users/",
    ],
)
def test_odd_slashes_are_404_never_a_redirect(client: TestClient, alice: Caller, path: str) -> None:
    response = client.get(path, headers=alice.headers, follow_redirects=False)
    assert_error(response, 404, "not_found")


def _route_methods(client: TestClient) -> dict[str, set[str]]:
    """Every route path of the app with the union of its routes' methods."""
    from starlette.routing import Route

    methods: dict[str, set[str]] = {}
    for route in client.app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route)
        methods.setdefault(route.path, set()).update(route.methods or ())
    return methods


def test_405_allow_lists_every_method_of_the_path(client: TestClient, alice: Caller) -> None:
    import re

    conversation = make_conversation(client, alice)
    values = {
        "user_id": alice.id,
        "token_id": MISSING_ID,
        "conversation_id": conversation["id"],
        "message_id": MISSING_ID,
        "thread_id": "t",
        "checkpoint_id": "c",
        "attachment_id": MISSING_ID,
        "snapshot_id": MISSING_ID,
        "task_id": MISSING_ID,
        "profile_id": MISSING_ID,
        "system_profile_id": MISSING_ID,
        "kind": "llm",
    }
    checked = 0
    for template, allowed in _route_methods(client).items():
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m[1]], template)
        for method in {"GET", "PUT", "POST", "PATCH", "DELETE"} - allowed:
            response = client.request(method, path, headers=alice.headers)
            assert_error(response, 405, "method_not_allowed")
            assert set(response.headers["allow"].split(", ")) == allowed, (method, path)
            checked += 1
    assert checked > 20
    response = client.put("/v1/me", headers=alice.headers)
    assert response.headers["allow"] == "GET, HEAD, PATCH"
