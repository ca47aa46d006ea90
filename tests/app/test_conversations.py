"""The caller's conversations: create, list (keyset), get, patch (If-Match), delete."""

from __future__ import annotations

import base64
import uuid
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
    get_conversation,
    list_conversations,
    list_messages,
    make_conversation,
    make_user,
    messages_url,
    ts,
)


def _url(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}"


def _all_pages(client: TestClient, caller: Caller, limit: int) -> list[list[Json]]:
    pages: list[list[Json]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = list_conversations(client, caller, **params)
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 100, "pagination does not end"


# --- create -----------------------------------------------------------------------------


def test_create_conversation_without_body_gets_defaults(client: TestClient, alice: Caller) -> None:
    response = client.post("/v1/conversations", headers=alice.headers)

    assert response.status_code == 201, response.text
    conversation = response.json()
    assert conversation["user_id"] == alice.id
    assert conversation["title"] == ""
    assert conversation["metadata"] == {}
    assert conversation["tags"] == []
    assert conversation["version"] == 1
    assert conversation["message_count"] == 0
    assert conversation["last_message_at"] is None
    assert conversation["updated_at"] == conversation["created_at"]
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == _url(conversation["id"])
    assert get_conversation(client, alice, conversation["id"]) == conversation


def test_create_conversation_with_fields_round_trips(client: TestClient, alice: Caller) -> None:
    body = {
        "id": "01900000-0000-7000-8000-0000000000aa",
        "title": "Trip to 東京 🗼",
        "metadata": {"model": "gpt-x", "temperature": 0.7, "flags": [True, None], "n": {"k": 1}},
        "tags": ["travel", "日本"],
    }

    response = client.post("/v1/conversations", json=body, headers=alice.headers)

    assert response.status_code == 201, response.text
    conversation = response.json()
    assert {key: conversation[key] for key in body} == body
    assert get_conversation(client, alice, body["id"]) == conversation


def test_create_conversation_retry_with_same_id_and_body_is_200_with_the_stored_one(
    client: TestClient, alice: Caller
) -> None:
    body = {"id": str(uuid.uuid4()), "title": "first", "metadata": {"k": 1}, "tags": ["t"]}
    created = client.post("/v1/conversations", json=body, headers=alice.headers)
    assert created.status_code == 201, created.text

    retry = client.post("/v1/conversations", json=body, headers=alice.headers)

    assert retry.status_code == 200, retry.text
    assert retry.json() == created.json()
    assert retry.headers["location"] == created.headers["location"]
    assert retry.headers["etag"] == created.headers["etag"]


def test_create_conversation_with_taken_id_is_409_and_keeps_original(
    client: TestClient, alice: Caller
) -> None:
    original = make_conversation(client, alice, title="first")

    response = client.post(
        "/v1/conversations", json={"id": original["id"], "title": "second"}, headers=alice.headers
    )

    assert_error(response, 409, "idempotency_mismatch")
    assert get_conversation(client, alice, original["id"]) == original


def test_create_conversation_with_another_users_id_answers_like_a_mismatch_of_ones_own(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    """Conversation ids are global; another user's id is answered exactly as a mismatch of
    one's own, whatever the body, and nothing of that user's conversation shows."""
    alices = make_conversation(client, alice, title="secret title", metadata={"secret": 1})
    bobs = make_conversation(client, bob, title="bob's")

    def attempt(conversation_id: str, **body: Any) -> tuple[int, Json]:
        response = client.post(
            "/v1/conversations", json={"id": conversation_id, **body}, headers=bob.headers
        )
        error = assert_error(response, 409)
        error["message"] = error["message"].replace(conversation_id, "ID")
        return response.status_code, error

    own_mismatch = attempt(bobs["id"], title="changed")
    assert own_mismatch[1]["code"] == "idempotency_mismatch"
    for body in ({}, {"title": "secret title", "metadata": {"secret": 1}}, {"title": "x"}):
        assert attempt(alices["id"], **body) == own_mismatch
    assert_error(client.get(_url(alices["id"]), headers=bob.headers), 404, "not_found")
    assert get_conversation(client, alice, alices["id"]) == alices


def test_create_conversation_invalid_body_is_422_with_field_and_creates_nothing(
    client: TestClient, alice: Caller
) -> None:
    bodies: list[tuple[object, str]] = [
        ({"title": "x" * 1001}, "title"),
        ({"title": 5}, "title"),
        ({"title": None}, "title"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({"tags": "a,b"}, "tags"),
        ({"tags": [1]}, "tags.0"),
        ({"tags": [""]}, "tags.0"),
        ({"tags": ["x" * 101]}, "tags.0"),
        ({"tags": [str(i) for i in range(101)]}, "tags"),
        ({"id": "not-a-uuid"}, "id"),
        ({"id": 5}, "id"),
        ({"user_id": MISSING_ID}, "user_id"),
        ({"version": 7}, "version"),
    ]
    for body, field in bodies:
        response = client.post("/v1/conversations", json=body, headers=alice.headers)

        error = assert_error(response, 422, "validation_error")
        assert field in [d["field"] for d in error["details"]], body
    assert list_conversations(client, alice)["items"] == []


def test_create_conversation_longest_title_is_accepted(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice, title="é" * 1000)

    assert get_conversation(client, alice, conversation["id"])["title"] == "é" * 1000


# --- get --------------------------------------------------------------------------------


def test_get_conversation_has_etag_of_its_version(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    client.patch(_url(conversation["id"]), json={"title": "x"}, headers=alice.headers)

    response = client.get(_url(conversation["id"]), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'


def test_get_conversation_missing_or_malformed_id_is_404(client: TestClient, alice: Caller) -> None:
    assert_error(client.get(_url(MISSING_ID), headers=alice.headers), 404, "not_found")
    for bad in ("abc", "123", MISSING_ID[:-1], MISSING_ID + "0", "..%2F..%2Fv1%2Fme"):
        assert_error(client.get(_url(bad), headers=alice.headers), 404, "not_found")


# --- list -------------------------------------------------------------------------------


def test_list_conversations_empty(client: TestClient, alice: Caller) -> None:
    assert list_conversations(client, alice) == {"items": [], "next_cursor": None}


def test_list_conversations_pages_with_next_cursor(client: TestClient, alice: Caller) -> None:
    created = [make_conversation(client, alice, title=f"c{i}") for i in range(3)]

    pages = _all_pages(client, alice, limit=2)

    assert pages == [created[:0:-1], created[:1]]
    assert list_conversations(client, alice) == {"items": created[::-1], "next_cursor": None}


def test_list_conversations_patch_moves_it_to_the_front(client: TestClient, alice: Caller) -> None:
    older = make_conversation(client, alice)
    newer = make_conversation(client, alice)

    client.patch(_url(older["id"]), json={"title": "renamed"}, headers=alice.headers)

    assert [c["id"] for c in list_conversations(client, alice)["items"]] == [
        older["id"],
        newer["id"],
    ]


def test_list_conversations_shows_only_the_callers(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    alices = [make_conversation(client, alice)["id"] for _ in range(3)]
    bobs = [make_conversation(client, bob)["id"] for _ in range(2)]

    assert {c["id"] for c in list_conversations(client, alice)["items"]} == set(alices)
    assert {c["id"] for c in list_conversations(client, bob)["items"]} == set(bobs)
    # A cursor from Alice's listing shows Bob nothing of hers.
    cursor = list_conversations(client, alice, limit=1)["next_cursor"]
    page = list_conversations(client, bob, cursor=cursor, limit=200)
    assert {c["id"] for c in page["items"]} <= set(bobs)


def test_list_conversations_limit_bounds(client: TestClient, alice: Caller) -> None:
    for _ in range(2):
        make_conversation(client, alice)
    assert len(list_conversations(client, alice, limit=1)["items"]) == 1
    assert len(list_conversations(client, alice, limit=200)["items"]) == 2
    assert len(list_conversations(client, alice, limit="")["items"]) == 2  # empty = default

    for limit in ("0", "201", "-1", "abc", "1.5", "1e2", "99999999999999999999", "0x10"):
        response = client.get("/v1/conversations", params={"limit": limit}, headers=alice.headers)
        error = assert_error(response, 422, "invalid_input")
        assert "limit" in error["message"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "x",
    "!!!!",
    "é",
    "a" * 10_000,
    _b64(b"not json"),
    _b64(b"null"),
    _b64(b"[]"),
    _b64(b"[1, 2]"),
    _b64(b'{"a": 1, "b": 2}'),
    _b64(b'["2025-01-01T00:00:00+00:00"]'),
    _b64(b'["2025-01-01T00:00:00", "01900000-0000-7000-8000-000000000000"]'),  # naive
    _b64(b'["yesterday", "01900000-0000-7000-8000-000000000000"]'),
    _b64(b'["2025-01-01T00:00:00+00:00", "not-a-uuid"]'),
    _b64(b'["2025-01-01T00:00:00+00:00", "01900000-0000-7000-8000-000000000000", 3]'),
]


def test_list_conversations_bad_cursor_is_422(client: TestClient, alice: Caller) -> None:
    make_conversation(client, alice)

    for cursor in BAD_CURSORS:
        response = client.get("/v1/conversations", params={"cursor": cursor}, headers=alice.headers)
        error = assert_error(response, 422, "invalid_input")
        assert "cursor" in error["message"], cursor


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"], ids=["min", "max"]
)
def test_list_conversations_cursor_with_out_of_range_timestamp_is_422(
    client: TestClient, alice: Caller, when: str
) -> None:
    # Well-formed, but the timestamp cannot be converted to UTC.
    cursor = _b64(f'["{when}", "01900000-0000-7000-8000-000000000000"]'.encode())

    response = client.get("/v1/conversations", params={"cursor": cursor}, headers=alice.headers)

    assert_error(response, 422, "invalid_input")


# --- patch ------------------------------------------------------------------------------


def test_patch_conversation_changes_given_fields_and_bumps_version(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(
        client, alice, title="t", metadata={"a": 1, "b": 2}, tags=["x"]
    )

    response = client.patch(
        _url(conversation["id"]), json={"metadata": {"c": 3}}, headers=alice.headers
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["title"] == "t"
    assert patched["tags"] == ["x"]
    assert patched["metadata"] == {"c": 3}  # replaced whole
    assert patched["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert ts(patched["updated_at"]) > ts(conversation["updated_at"])
    assert patched["created_at"] == conversation["created_at"]
    assert get_conversation(client, alice, conversation["id"]) == patched

    again = client.patch(
        _url(conversation["id"]), json={"title": "t2", "tags": []}, headers=alice.headers
    ).json()
    assert (again["title"], again["tags"], again["metadata"], again["version"]) == (
        "t2",
        [],
        {"c": 3},
        3,
    )


def test_patch_conversation_with_current_if_match_succeeds(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)

    for version, if_match in enumerate(['"1"', "2", 'W/"3"', "*"], start=1):
        response = client.patch(
            _url(conversation["id"]),
            json={"title": f"v{version}"},
            headers={**alice.headers, "If-Match": if_match},
        )
        assert response.status_code == 200, (if_match, response.text)
        assert response.json()["version"] == version + 1
        assert response.headers["etag"] == f'"{version + 1}"'


def test_patch_conversation_with_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice, title="original")
    client.patch(_url(conversation["id"]), json={"title": "second"}, headers=alice.headers)
    current = get_conversation(client, alice, conversation["id"])

    for stale in ('"1"', '"3"', '"0"', '"999999999"'):
        response = client.patch(
            _url(conversation["id"]),
            json={"title": "lost update"},
            headers={**alice.headers, "If-Match": stale},
        )
        assert_error(response, 412, "stale_version")

    assert get_conversation(client, alice, conversation["id"]) == current


def test_patch_conversation_with_malformed_if_match_is_400_and_changes_nothing(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)

    for bad in ("abc", '""', '"-1"', '"1.5"', '"1", "2"', '"99999999999"', '"0x1"', "W/", "²"):
        response = client.patch(
            _url(conversation["id"]),
            json={"title": "nope"},
            headers={**alice.headers, "If-Match": bad.encode("latin-1")},
        )
        assert_error(response, 400, "bad_if_match")

    assert get_conversation(client, alice, conversation["id"]) == conversation


def test_patch_conversation_invalid_body_is_rejected_and_changes_nothing(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice, title="keep")
    url = _url(conversation["id"])

    for body in ({"title": "x" * 1001}, {"tags": [1]}, {"metadata": []}, {"version": 9}):
        assert_error(client.patch(url, json=body, headers=alice.headers), 422, "validation_error")
    for raw in (b"[]", b'"title"', b"null", b"1"):
        response = client.patch(
            url, content=raw, headers={**alice.headers, "content-type": "application/json"}
        )
        assert_error(response, 422, "invalid_input")
    assert_error(
        client.patch(
            url, content=b"{", headers={**alice.headers, "content-type": "application/json"}
        ),
        400,
        "malformed_json",
    )
    assert_error(client.patch(url, headers=alice.headers), 415)

    assert get_conversation(client, alice, conversation["id"]) == conversation


@pytest.mark.parametrize("field", ["title", "metadata", "tags"])
def test_patch_conversation_null_on_a_field_that_cannot_be_null_is_422_not_ignored(
    client: TestClient, alice: Caller, field: str
) -> None:
    conversation = make_conversation(client, alice, title="keep", metadata={"k": 1}, tags=["t"])
    other = {"title": "changed"} if field != "title" else {"tags": ["changed"]}

    response = client.patch(
        _url(conversation["id"]), json={field: None, **other}, headers=alice.headers
    )

    error = assert_error(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == [field]
    assert "null" in error["message"]
    assert get_conversation(client, alice, conversation["id"]) == conversation
    # Absent keeps; the empty value empties.
    emptied = client.patch(
        _url(conversation["id"]),
        json={field: {"title": "", "metadata": {}, "tags": []}[field]},
        headers=alice.headers,
    )
    assert emptied.status_code == 200, emptied.text
    kept = {k: v for k, v in conversation.items() if k in ("title", "metadata", "tags")}
    assert {k: emptied.json()[k] for k in kept} == {**kept, field: emptied.json()[field]}
    assert not emptied.json()[field]


def test_patch_conversation_missing_is_404(client: TestClient, alice: Caller) -> None:
    response = client.patch(_url(MISSING_ID), json={"title": "x"}, headers=alice.headers)
    assert_error(response, 404, "not_found")
    stale = client.patch(
        _url(MISSING_ID), json={"title": "x"}, headers={**alice.headers, "If-Match": '"1"'}
    )
    assert_error(stale, 404, "not_found")


# --- delete -----------------------------------------------------------------------------


def test_delete_conversation_is_204_then_404(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    kept = make_conversation(client, alice)
    append(client, alice, conversation["id"])

    response = client.delete(_url(conversation["id"]), headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(_url(conversation["id"]), headers=alice.headers), 404)
    assert_error(client.get(messages_url(conversation["id"]), headers=alice.headers), 404)
    assert [c["id"] for c in list_conversations(client, alice)["items"]] == [kept["id"]]
    assert_error(client.delete(_url(conversation["id"]), headers=alice.headers), 404)


def test_delete_conversation_missing_is_404(client: TestClient, alice: Caller) -> None:
    assert_error(client.delete(_url(MISSING_ID), headers=alice.headers), 404, "not_found")


# --- counters ---------------------------------------------------------------------------


def test_conversation_counters_follow_appends_and_a_delete_leaves_a_tombstone(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)
    append(client, alice, conversation["id"], "one")
    second = append(client, alice, conversation["id"], "two")

    after_appends = get_conversation(client, alice, conversation["id"])
    assert after_appends["message_count"] == 2
    assert after_appends["last_message_at"] == second["created_at"]
    assert ts(after_appends["updated_at"]) >= ts(second["created_at"])
    assert ts(second["created_at"]) > ts(conversation["updated_at"])

    # A deleted message stays as a tombstone (README "Edits and retraction"): still counted,
    # its seq kept, its content gone.
    response = client.delete(
        f"{messages_url(conversation['id'])}/{second['id']}", headers=alice.headers
    )
    assert response.status_code == 204
    after_delete = get_conversation(client, alice, conversation["id"])
    assert after_delete["message_count"] == 2
    assert after_delete["last_message_at"] == second["created_at"]
    tombstone = client.get(
        f"{messages_url(conversation['id'])}/{second['id']}", headers=alice.headers
    ).json()
    assert (tombstone["seq"], tombstone["parts"], tombstone["content"]) == (2, [], "")
    assert tombstone["retracted_at"] is not None


# --- other users ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PATCH", {"title": "bob was here"}), ("DELETE", None)],
)
def test_conversation_of_another_user_is_404_and_unchanged(
    client: TestClient, alice: Caller, bob: Caller, method: str, body: object
) -> None:
    conversation = make_conversation(client, alice, title="private", metadata={"k": "v"})
    append(client, alice, conversation["id"], "secret")
    before = get_conversation(client, alice, conversation["id"])
    messages_before = list_messages(client, alice, conversation["id"])

    for headers in (bob.headers, {**bob.headers, "If-Match": '"1"'}):
        response = client.request(method, _url(conversation["id"]), json=body, headers=headers)
        error = assert_error(response, 404, "not_found")
        assert "private" not in error["message"]

    assert get_conversation(client, alice, conversation["id"]) == before
    assert list_messages(client, alice, conversation["id"]) == messages_before
    assert list_conversations(client, bob)["items"] == []


def test_list_conversations_page_ends_at_max_page_bytes(settings: Settings) -> None:
    small = settings.model_copy(update={"app_max_page_bytes": 3000})
    with TestClient(create_app(small)) as client:
        carol = Caller(*make_user(client, "carol"))
        made = [
            make_conversation(client, carol, title=f"c{i}", metadata={"blob": "x" * 1000})
            for i in range(3)
        ]
        pages = _all_pages(client, carol, limit=50)
    # APP_MAX_PAGE_BYTES reaches the gateway: two of about 1,000 bytes fit in 3,000.
    assert pages == [made[:0:-1], made[:1]]
