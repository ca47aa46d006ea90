"""Messages of the caller's conversations: append (idempotent), page, get, edit/stream, delete."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    count_rows,
    get_conversation,
    list_messages,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)

# One of each Vercel AI SDK UI message part type, with the optional fields filled in, plus
# types Mnemo does not know: all must come back exactly as sent.
ALL_PARTS: list[Json] = [
    {"type": "step-start"},
    {"type": "reasoning", "text": "The user wants the weather.", "state": "done"},
    {
        "type": "reasoning",
        "text": "",
        "providerMetadata": {"anthropic": {"signature": "c2ln"}},
    },
    {"type": "text", "text": "Let me check.", "state": "done"},
    {
        "type": "tool-getWeather",
        "toolCallId": "call_1",
        "state": "output-available",
        "input": {"city": "Paris", "units": ["c", "f"]},
        "output": {"temperature": 21.5, "conditions": None, "hourly": [20, 21, 22]},
        "providerExecuted": False,
    },
    {
        "type": "tool-search",
        "toolCallId": "call_2",
        "state": "output-error",
        "input": {"q": "x"},
        "errorText": "rate limited",
    },
    {"type": "tool-draft", "toolCallId": "call_3", "state": "input-streaming", "input": None},
    {
        "type": "dynamic-tool",
        "toolName": "mcp.lookup",
        "toolCallId": "call_4",
        "state": "output-available",
        "input": {},
        "output": "ok",
    },
    {
        "type": "file",
        "mediaType": "image/png",
        "url": "data:image/png;base64,iVBORw0KGgo=",
        "filename": "dot.png",
    },
    {"type": "source-url", "sourceId": "s1", "url": "https://example.com/a", "title": "A"},
    {"type": "source-document", "sourceId": "s2", "mediaType": "application/pdf", "title": "D"},
    {"type": "data-weather", "id": "w1", "data": {"city": "Paris", "status": "loading"}},
    {"type": "data-progress", "data": 0.5},
    {"type": "data-nothing", "data": None},
    {"type": "text", "text": "Sunny, 21.5 °C ☀️ — 晴れ"},
    {"type": "future-part", "anything": [1, {"deep": [True, False, None]}], "text": "not text"},
    {"type": "tool-", "whatever": 1},  # not a tool part (no name): an unknown type, kept
]


def _url(conversation_id: str, message_id: str | None = None) -> str:
    base = messages_url(conversation_id)
    return base if message_id is None else f"{base}/{message_id}"


def _seqs(page: Json) -> list[int]:
    return [m["seq"] for m in page["items"]]


@pytest.fixture
def conversation(client: TestClient, alice: Caller) -> Json:
    return make_conversation(client, alice, title="chat")


# --- append -----------------------------------------------------------------------------


def test_append_message_returns_it_with_next_seq_and_location(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]

    response = client.post(
        _url(cid),
        json={
            "role": "assistant",
            "parts": [text_part("hello"), {"type": "step-start"}, text_part("world")],
            "metadata": {"model": "m-1", "usage": {"tokens": 12}},
        },
        headers=alice.headers,
    )

    assert response.status_code == 201, response.text
    message = response.json()
    assert message["conversation_id"] == cid
    assert message["seq"] == 1
    assert message["role"] == "assistant"
    assert message["content"] == "hello\nworld"
    assert message["metadata"] == {"model": "m-1", "usage": {"tokens": 12}}
    assert message["status"] == "complete"
    assert response.headers["location"] == _url(cid, message["id"])
    assert client.get(_url(cid, message["id"]), headers=alice.headers).json() == message


def test_append_message_every_role_and_empty_parts(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    for role in ("user", "assistant", "system", "tool"):
        message = append(client, alice, conversation["id"], role=role, parts=[])
        assert (message["role"], message["parts"], message["content"]) == (role, [], "")


def test_append_message_all_part_types_round_trip_exactly(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]

    message = append(client, alice, cid, role="assistant", parts=ALL_PARTS)

    assert message["parts"] == ALL_PARTS
    assert client.get(_url(cid, message["id"]), headers=alice.headers).json()["parts"] == ALL_PARTS
    assert list_messages(client, alice, cid)["items"][0]["parts"] == ALL_PARTS
    # Only "text" parts make the content (not reasoning, nor an unknown part's "text").
    assert message["content"] == "Let me check.\nSunny, 21.5 °C ☀️ — 晴れ"


def test_append_message_updates_conversation_counters(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    message = append(client, alice, conversation["id"])

    after = get_conversation(client, alice, conversation["id"])
    assert after["message_count"] == 1
    assert after["last_message_at"] == message["created_at"]
    assert after["updated_at"] == message["created_at"]


def test_append_message_same_id_again_returns_original_without_duplicate(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message_id = str(uuid.uuid4())
    first = append(client, alice, cid, "original", id=message_id, metadata={"try": 1})

    retry = client.post(
        _url(cid),
        json={
            "id": message_id,
            "role": "user",
            "parts": [text_part("original")],
            "metadata": {"try": 1},
        },
        headers=alice.headers,
    )

    assert retry.status_code == 200, retry.text
    assert retry.json() == first
    assert retry.headers["location"] == _url(cid, message_id)


def test_append_message_same_id_other_content_is_409_idempotency_mismatch(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message_id = str(uuid.uuid4())
    append(client, alice, cid, "original", id=message_id)

    response = client.post(
        _url(cid),
        json={"id": message_id, "role": "user", "parts": [text_part("changed")]},
        headers=alice.headers,
    )

    error = assert_error(response, 409, "idempotency_mismatch")
    assert message_id in error["message"]


def test_append_message_streaming_then_complete(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message = append(client, alice, cid, "Hel", role="assistant", status="streaming")
    assert message["status"] == "streaming"

    response = client.patch(
        _url(cid, message["id"]), json={"append_parts": [text_part("lo")]}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["parts"] == [text_part("Hel"), text_part("lo")]
    done = client.patch(
        _url(cid, message["id"]),
        json={"status": "complete", "append_parts": [{"type": "data-usage", "data": {"t": 9}}]},
        headers=alice.headers,
    )

    assert done.status_code == 200, done.text
    final = done.json()
    assert final["status"] == "complete"
    assert final["parts"] == [
        text_part("Hel"),
        text_part("lo"),
        {"type": "data-usage", "data": {"t": 9}},
    ]
    assert client.get(_url(cid, message["id"]), headers=alice.headers).json() == final


INVALID_PARTS: list[tuple[Json, str]] = [
    ({"type": "text"}, "text"),
    ({"type": "text", "text": 5}, "text"),
    ({"type": "reasoning"}, "text"),
    ({"type": "tool-getWeather", "toolCallId": "c1"}, "state"),
    ({"type": "tool-getWeather", "state": "input-available"}, "toolCallId"),
    ({"type": "dynamic-tool", "toolCallId": "c1", "state": "input-available"}, "toolName"),
    ({"type": "file", "mediaType": "image/png"}, "url"),
    ({"type": "source-url", "sourceId": "s"}, "url"),
    ({"type": "source-document", "sourceId": "s", "mediaType": "text/plain"}, "title"),
    ({"type": "data-weather"}, "data"),
    ({"text": "no type"}, "type"),
    ({"type": ""}, "type"),
    ({"type": 3}, "type"),
]


def test_append_message_invalid_part_is_422_with_path_and_stores_nothing(
    client: TestClient, alice: Caller, conversation: Json, settings: Settings
) -> None:
    cid = conversation["id"]
    for part, needs in INVALID_PARTS:
        body = {"role": "assistant", "parts": [text_part("fine"), part]}

        response = client.post(_url(cid), json=body, headers=alice.headers)

        error = assert_error(response, 422, "validation_error")
        assert [d["field"] for d in error["details"]] == ["parts.1"], part
        assert needs in error["message"], part

    assert list_messages(client, alice, cid)["items"] == []
    assert get_conversation(client, alice, cid) == conversation
    assert count_rows(settings, "SELECT count(*) FROM messages") == 0


def test_append_message_invalid_body_is_422_and_stores_nothing(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    bodies: list[tuple[object, str]] = [
        ({"parts": []}, "role"),
        ({"role": "user"}, "parts"),
        ({"role": "robot", "parts": []}, "role"),
        ({"role": "USER", "parts": []}, "role"),
        ({"role": "user", "parts": {}}, "parts"),
        ({"role": "user", "parts": "hello"}, "parts"),
        ({"role": "user", "parts": ["hello"]}, "parts.0"),
        ({"role": "user", "parts": [[]]}, "parts.0"),
        ({"role": "user", "parts": [], "status": "done"}, "status"),
        ({"role": "user", "parts": [], "metadata": []}, "metadata"),
        ({"role": "user", "parts": [], "id": "x"}, "id"),
        ({"role": "user", "parts": [], "seq": 1}, "seq"),
        ({"role": "user", "parts": [], "conversation_id": MISSING_ID}, "conversation_id"),
    ]
    for body, field in bodies:
        response = client.post(_url(cid), json=body, headers=alice.headers)

        error = assert_error(response, 422, "validation_error")
        assert field in [d["field"] for d in error["details"]], body
    assert get_conversation(client, alice, cid) == conversation


def test_append_message_to_missing_conversation_is_404(client: TestClient, alice: Caller) -> None:
    response = client.post(
        _url(MISSING_ID), json={"role": "user", "parts": []}, headers=alice.headers
    )

    assert_error(response, 404, "not_found")
    assert_error(client.post("/v1/conversations/nope/messages", json={}), 404)


def test_append_message_long_text_round_trips(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    text = "長い文章 🧵 " * 40_000  # ~0.5 MB of UTF-8 in one part

    message = append(client, alice, conversation["id"], text)

    stored = client.get(_url(conversation["id"], message["id"]), headers=alice.headers).json()
    assert stored["parts"] == [text_part(text)]
    assert stored["content"] == text


# --- list -------------------------------------------------------------------------------


@pytest.fixture
def seven(client: TestClient, alice: Caller, conversation: Json) -> list[Json]:
    """Seven messages, seq 1..7."""
    return [append(client, alice, conversation["id"], f"m{i}") for i in range(1, 8)]


def test_list_messages_default_is_all_ascending(
    client: TestClient, alice: Caller, conversation: Json, seven: list[Json]
) -> None:
    page = list_messages(client, alice, conversation["id"])

    assert page == {"items": seven, "has_more": False}


def test_list_messages_newest_page_and_walking_back_with_before(
    client: TestClient, alice: Caller, conversation: Json, seven: list[Json]
) -> None:
    cid = conversation["id"]

    newest = list_messages(client, alice, cid, limit=3)
    assert (_seqs(newest), newest["has_more"]) == ([5, 6, 7], True)
    assert newest["items"] == seven[4:]

    middle = list_messages(client, alice, cid, limit=3, before=5)
    assert (_seqs(middle), middle["has_more"]) == ([2, 3, 4], True)

    for before in (0, 1):
        assert list_messages(client, alice, cid, before=before) == {"items": [], "has_more": False}
    beyond = list_messages(client, alice, cid, limit=2, before=9_223_372_036_854_775_807)
    assert (_seqs(beyond), beyond["has_more"]) == ([6, 7], True)


def test_list_messages_walking_forward_with_after(
    client: TestClient, alice: Caller, conversation: Json, seven: list[Json]
) -> None:
    cid = conversation["id"]

    page = list_messages(client, alice, cid, limit=3, after=3)
    assert (page["items"], page["has_more"]) == (seven[3:6], True)
    last = list_messages(client, alice, cid, limit=3, after=6)
    assert (_seqs(last), last["has_more"]) == ([7], False)


def test_list_messages_limit_bounds(
    client: TestClient, alice: Caller, conversation: Json, seven: list[Json]
) -> None:
    cid = conversation["id"]
    assert _seqs(list_messages(client, alice, cid, limit=1)) == [7]
    assert _seqs(list_messages(client, alice, cid, limit=200)) == [1, 2, 3, 4, 5, 6, 7]


def test_list_messages_default_page_is_50(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    for i in range(52):
        append(client, alice, cid, str(i))

    page = list_messages(client, alice, cid)

    assert (_seqs(page), page["has_more"]) == (list(range(3, 53)), True)


BAD_LIST_QUERIES: list[dict[str, Any]] = [
    {"limit": 0},
    {"limit": 201},
    {"limit": -5},
    {"limit": "ten"},
    {"limit": "99999999999999999999"},
    {"before": -1},
    {"before": "99999999999999999999"},
    {"before": "9223372036854775808"},
    {"before": "1.0"},
    {"before": "seq"},
    {"after": -1},
    {"after": "99999999999999999999"},
    {"after": "0x1"},
    {"before": 5, "after": 2},
    {"before": 0, "after": 0},
]


def test_list_messages_bad_query_is_422(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    append(client, alice, conversation["id"])

    for params in BAD_LIST_QUERIES:
        response = client.get(_url(conversation["id"]), params=params, headers=alice.headers)
        assert_error(response, 422, "invalid_input")


def test_list_messages_empty_conversation(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    assert list_messages(client, alice, conversation["id"]) == {"items": [], "has_more": False}


def test_list_messages_of_missing_conversation_is_404(client: TestClient, alice: Caller) -> None:
    for params in ({}, {"before": 10}, {"after": 0}):
        response = client.get(_url(MISSING_ID), params=params, headers=alice.headers)
        assert_error(response, 404, "not_found")


# --- get --------------------------------------------------------------------------------


def test_get_message_missing_or_in_another_conversation_is_404(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    other = make_conversation(client, alice)
    message = append(client, alice, conversation["id"])

    for url in (
        _url(conversation["id"], MISSING_ID),
        _url(other["id"], message["id"]),  # the right id under the wrong conversation
        _url(MISSING_ID, message["id"]),
        _url(conversation["id"], "not-a-uuid"),
    ):
        assert_error(client.get(url, headers=alice.headers), 404, "not_found")


# --- patch ------------------------------------------------------------------------------


def test_patch_message_replaces_parts_and_metadata(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message = append(client, alice, cid, "draft", metadata={"a": 1})

    response = client.patch(
        _url(cid, message["id"]),
        json={"parts": [text_part("final"), text_part("answer")], "metadata": {"b": 2}},
        headers=alice.headers,
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["parts"] == [text_part("final"), text_part("answer")]
    assert patched["content"] == "final\nanswer"
    assert patched["metadata"] == {"b": 2}
    assert (patched["seq"], patched["role"], patched["status"]) == (1, "user", "complete")
    assert patched["created_at"] == message["created_at"]
    assert client.get(_url(cid, message["id"]), headers=alice.headers).json() == patched

    metadata_only = client.patch(
        _url(cid, message["id"]), json={"metadata": {}}, headers=alice.headers
    ).json()
    assert (metadata_only["parts"], metadata_only["metadata"]) == (patched["parts"], {})


def test_patch_message_append_parts_to_complete_message_is_409_and_unchanged(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message = append(client, alice, cid, "done")

    response = client.patch(
        _url(cid, message["id"]), json={"append_parts": [text_part("more")]}, headers=alice.headers
    )

    assert_error(response, 409, "conflict")
    assert client.get(_url(cid, message["id"]), headers=alice.headers).json() == message


def test_patch_message_complete_back_to_streaming_is_409_and_unchanged(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message = append(client, alice, cid, "x", status="streaming")
    completed = client.patch(
        _url(cid, message["id"]), json={"status": "complete"}, headers=alice.headers
    ).json()

    reopen = client.patch(
        _url(cid, message["id"]), json={"status": "streaming"}, headers=alice.headers
    )

    assert_error(reopen, 409, "conflict")
    assert client.get(_url(cid, message["id"]), headers=alice.headers).json() == completed
    # Completing again is harmless.
    again = client.patch(
        _url(cid, message["id"]), json={"status": "complete"}, headers=alice.headers
    )
    assert again.status_code == 200
    assert again.json()["parts"] == completed["parts"]


def test_patch_message_invalid_body_is_422_and_unchanged(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message = append(client, alice, cid, "x", status="streaming")
    bodies: list[tuple[object, str]] = [
        ({}, ""),
        ({"parts": None, "metadata": None}, "parts"),
        # null never clears what cannot be empty, nor is it silently ignored
        ({"metadata": None, "parts": [text_part("y")]}, "metadata"),
        ({"append_parts": None, "status": "complete"}, "append_parts"),
        ({"status": None, "metadata": {}}, "status"),
        ({"append_parts": [{"type": "text"}]}, "append_parts.0"),
        ({"parts": [{"type": "tool-x", "toolCallId": "c"}]}, "parts.0"),
        ({"status": "finished"}, "status"),
        ({"metadata": "x"}, "metadata"),
        ({"role": "system"}, "role"),
        ({"seq": 9}, "seq"),
    ]
    for body, field in bodies:
        response = client.patch(_url(cid, message["id"]), json=body, headers=alice.headers)
        error = assert_error(response, 422, "validation_error")
        assert field in [d["field"] for d in error["details"]], body

    assert client.get(_url(cid, message["id"]), headers=alice.headers).json() == message


def test_patch_message_missing_is_404(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    for url in (_url(conversation["id"], MISSING_ID), _url(MISSING_ID, MISSING_ID)):
        response = client.patch(url, json={"metadata": {}}, headers=alice.headers)
        assert_error(response, 404, "not_found")


# --- delete -----------------------------------------------------------------------------


def test_delete_message_is_204_and_leaves_a_tombstone_in_its_place(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    first, middle, last = (append(client, alice, cid, t) for t in ("a", "b", "c"))

    response = client.delete(_url(cid, middle["id"]), headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    tombstone = client.get(_url(cid, middle["id"]), headers=alice.headers).json()
    assert (tombstone["seq"], tombstone["parts"], tombstone["content"]) == (2, [], "")
    assert tombstone["metadata"] == {} and tombstone["retracted_at"] is not None
    assert list_messages(client, alice, cid)["items"] == [first, tombstone, last]
    assert get_conversation(client, alice, cid)["message_count"] == 3
    again = client.delete(_url(cid, middle["id"]), headers=alice.headers)
    assert again.status_code == 204
    assert client.get(_url(cid, middle["id"]), headers=alice.headers).json() == tombstone
    assert_error(client.delete(_url(cid, MISSING_ID), headers=alice.headers), 404)


def test_delete_message_keeps_its_id_taken_and_tells_nothing_of_the_content(
    client: TestClient, alice: Caller, conversation: Json
) -> None:
    cid = conversation["id"]
    message_id = str(uuid.uuid4())
    append(client, alice, cid, "v1", id=message_id)
    client.delete(_url(cid, message_id), headers=alice.headers)

    for text in ("v1", "v2"):  # a retry of the deleted append no longer confirms its text
        body = {"id": message_id, "role": "user", "parts": [text_part(text)]}
        response = client.post(messages_url(cid), json=body, headers=alice.headers)
        assert_error(response, 409, "idempotency_mismatch")
    assert [m["seq"] for m in list_messages(client, alice, cid)["items"]] == [1]


# --- other users ------------------------------------------------------------------------


def _snapshot(client: TestClient, caller: Caller, conversation_id: str) -> tuple[Json, Json]:
    return (
        get_conversation(client, caller, conversation_id),
        list_messages(client, caller, conversation_id),
    )


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "messages", {"role": "user", "parts": [{"type": "text", "text": "bob"}]}),
        ("GET", "messages", None),
        ("GET", "message", None),
        ("PATCH", "message", {"parts": [], "metadata": {"bob": True}}),
        ("PATCH", "message", {"append_parts": [{"type": "text", "text": "bob"}]}),
        ("PATCH", "message", {"status": "complete"}),
        ("DELETE", "message", None),
    ],
)
def test_messages_of_another_user_are_404_and_unchanged(
    client: TestClient,
    alice: Caller,
    bob: Caller,
    conversation: Json,
    method: str,
    target: str,
    body: object,
) -> None:
    cid = conversation["id"]
    message = append(client, alice, cid, "secret", status="streaming")
    before = _snapshot(client, alice, cid)
    bobs = make_conversation(client, bob)
    urls = (
        [_url(cid)]
        if target == "messages"
        else [
            _url(cid, message["id"]),
            _url(bobs["id"], message["id"]),  # Alice's message id under Bob's conversation
        ]
    )

    for url in urls:
        response = client.request(method, url, json=body, headers=bob.headers)
        error = assert_error(response, 404, "not_found")
        assert "secret" not in error["message"]

    assert _snapshot(client, alice, cid) == before
    assert list_messages(client, bob, bobs["id"])["items"] == []


def test_append_message_with_id_of_another_users_message_does_not_touch_it(
    client: TestClient, alice: Caller, bob: Caller, conversation: Json
) -> None:
    message = append(client, alice, conversation["id"], "alice's")
    bobs = make_conversation(client, bob)

    mine = append(client, bob, bobs["id"], "bob's", id=message["id"])

    assert (mine["conversation_id"], mine["content"]) == (bobs["id"], "bob's")
    stored = client.get(_url(conversation["id"], message["id"]), headers=alice.headers).json()
    assert stored == message


# --- size limits ------------------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    """The app with small limits: messages of 3 parts / 300 bytes of parts (text_part("x" * n)
    is n + 28 bytes of parts), pages of 5000 bytes."""
    small = settings.model_copy(
        update={
            "app_max_message_bytes": 300,
            "app_max_message_parts": 3,
            "app_max_page_bytes": 5000,
        }
    )
    with TestClient(create_app(small)) as client:
        yield client


def test_append_message_over_the_message_limits_is_413_and_stores_nothing(
    limited: TestClient,
) -> None:
    carol = Caller(*make_user(limited, "carol"))
    cid = make_conversation(limited, carol)["id"]
    for parts in (
        [text_part("x" * 273)],
        [text_part("")] * 4,
        [text_part("x" * 122)] * 2 + [text_part("x")],
    ):
        response = limited.post(
            _url(cid), json={"role": "user", "parts": parts}, headers=carol.headers
        )
        error = assert_error(response, 413, "message_too_large")
        assert "APP_MAX_MESSAGE_BYTES" in error["message"]
    assert list_messages(limited, carol, cid)["items"] == []
    fits = append(
        limited, carol, cid, parts=[text_part("x" * 122), text_part("x" * 94), text_part("")]
    )
    assert fits["seq"] == 1


def test_patch_message_growing_it_over_the_limits_is_413_and_unchanged(
    limited: TestClient,
) -> None:
    carol = Caller(*make_user(limited, "carol"))
    cid = make_conversation(limited, carol)["id"]
    started = append(limited, carol, cid, parts=[], role="assistant", status="streaming")
    url = _url(cid, started["id"])
    chunk = {"append_parts": [text_part("x" * 72)]}  # 100 bytes
    for _ in range(3):
        assert limited.patch(url, json=chunk, headers=carol.headers).status_code == 200
    before = limited.get(url, headers=carol.headers).json()
    for body in (chunk, {"parts": [text_part("x" * 273)]}, {"parts": [text_part("")] * 4}):
        assert_error(limited.patch(url, json=body, headers=carol.headers), 413, "message_too_large")
    assert limited.get(url, headers=carol.headers).json() == before
    done = limited.patch(url, json={"status": "complete"}, headers=carol.headers)
    assert done.status_code == 200 and len(done.json()["parts"]) == 3


def test_list_messages_page_ends_at_max_page_bytes_with_has_more(limited: TestClient) -> None:
    carol = Caller(*make_user(limited, "carol"))
    cid = make_conversation(limited, carol)["id"]
    # Each weighs 200 bytes of text (in parts and content) + 28 of JSON + 2 of metadata
    # {}: 21 fit in 5000 bytes (APP_MAX_PAGE_BYTES reaches the gateway).
    made = [append(limited, carol, cid, f"{i:03}" + "x" * 97) for i in range(23)]

    newest = list_messages(limited, carol, cid)

    assert (newest["items"], newest["has_more"]) == (made[2:], True)
