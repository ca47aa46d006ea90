"""Read state over HTTP: mark read and delivered, unread counts and messages, receipts,
delivery statuses; a non-member gets 404. Members are added with SQL (membership is another
aggregate's); messages are appended over HTTP, system messages (no sender) with SQL."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from dal.ids import new_id
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    append,
    assert_error,
    make_conversation,
    make_user,
)
from tests.dal.test_reads import ADD_MEMBER, POST


def _named(sql: str) -> str:
    """asyncpg's $n placeholders as psycopg's named ones."""
    return re.sub(r"\$(\d+)", r"%(p\1)s", sql)


def add_member(settings: Settings, conversation: Json, caller: Caller, role: str) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            _named(ADD_MEMBER),
            {"p1": conversation["id"], "p2": caller.id, "p3": role, "p4": None},
        )


def post(client: TestClient, settings: Settings, conversation: Json, sender: Caller | None) -> int:
    """A message from ``sender`` (appended over HTTP), or without a sender (a system message,
    written with SQL as the append statement writes it); its seq."""
    if sender is not None:
        return int(append(client, sender, conversation["id"], "hello")["seq"])
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            _named(POST),
            {
                "p1": conversation["id"],
                "p2": sender.id if sender else None,
                "p3": new_id(),
                "p4": "hello",
            },
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def carol(client: TestClient) -> Caller:
    return Caller(*make_user(client, "carol"))


@pytest.fixture
def chat(client: TestClient, settings: Settings, alice: Caller, bob: Caller) -> Json:
    conversation = make_conversation(client, alice, title="team")
    add_member(settings, conversation, alice, "owner")
    add_member(settings, conversation, bob, "member")
    return conversation


def _url(conversation: Json, tail: str) -> str:
    return f"/v1/conversations/{conversation['id']}/{tail}"


def test_mark_read_moves_forward_only_and_counts_unread(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller, chat: Json
) -> None:
    for _ in range(4):
        post(client, settings, chat, alice)
    state = client.get(_url(chat, "read"), headers=bob.headers).json()
    assert (state["last_read_seq"], state["unread"], state["capped"]) == (0, 4, False)
    marked = client.post(_url(chat, "read"), json={"seq": 3}, headers=bob.headers)
    assert marked.status_code == 200, marked.text
    assert (marked.json()["last_read_seq"], marked.json()["unread"]) == (3, 1)
    back = client.post(_url(chat, "read"), json={"seq": 1}, headers=bob.headers).json()
    assert (back["last_read_seq"], back["delivered_seq"]) == (3, 3)
    everything = client.post(_url(chat, "read"), headers=bob.headers).json()
    assert (everything["last_read_seq"], everything["unread"]) == (4, 0)
    total = client.get("/v1/me/unread", headers=bob.headers).json()
    assert (total["total"], total["items"]) == (0, [])


def test_mark_read_bad_seq_is_422_and_changes_nothing_a_large_one_is_clamped(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller, chat: Json
) -> None:
    post(client, settings, chat, alice)
    assert_error(client.post(_url(chat, "read"), json={"seq": -1}, headers=bob.headers), 422)
    assert_error(client.post(_url(chat, "read"), json={"seq": "1"}, headers=bob.headers), 422)
    assert_error(client.post(_url(chat, "read"), json={"seq": 1.5}, headers=bob.headers), 422)
    assert_error(client.post(_url(chat, "read"), json={"sq": 1}, headers=bob.headers), 422)
    state = client.get(_url(chat, "read"), headers=bob.headers).json()
    assert (state["last_read_seq"], state["delivered_seq"]) == (0, 0)
    clamped = client.post(_url(chat, "delivered"), json={"seq": 2.0**62}, headers=bob.headers)
    assert clamped.status_code == 200, clamped.text
    assert (clamped.json()["last_read_seq"], clamped.json()["delivered_seq"]) == (0, 1)


def test_unread_messages_and_totals_over_conversations(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller, chat: Json
) -> None:
    other = make_conversation(client, alice, title="other")
    add_member(settings, other, alice, "owner")
    add_member(settings, other, bob, "member")
    for _ in range(3):
        post(client, settings, chat, alice)
    post(client, settings, other, None)
    post(client, settings, chat, bob)  # bob's own: never unread for him
    response = client.post(_url(chat, "read"), json={"seq": 4}, headers=bob.headers)
    assert response.status_code == 200  # bob read up to his message
    post(client, settings, chat, alice)
    summary = client.get("/v1/me/unread", params={"limit": 1}, headers=bob.headers).json()
    assert (summary["total"], summary["conversations"], summary["capped"]) == (2, 2, False)
    assert len(summary["items"]) == 1 and summary["next_cursor"]
    rest = client.get(
        "/v1/me/unread", params={"limit": 1, "cursor": summary["next_cursor"]}, headers=bob.headers
    ).json()
    counts = {i["conversation_id"]: i["unread"] for i in summary["items"] + rest["items"]}
    assert counts == {chat["id"]: 1, other["id"]: 1}
    assert rest["next_cursor"] is None
    some = client.get(
        "/v1/me/unread/counts",
        params=[("conversation_id", other["id"]), ("conversation_id", MISSING_ID)],
        headers=bob.headers,
    ).json()
    assert [(c["conversation_id"], c["unread"]) for c in some["items"]] == [(other["id"], 1)]
    assert_error(
        client.get("/v1/me/unread/counts", params={"conversation_id": "nope"}, headers=bob.headers),
        422,
    )
    unread = client.get(_url(chat, "unread"), headers=bob.headers).json()
    assert ([m["seq"] for m in unread["items"]], unread["has_more"]) == ([5], False)
    assert_error(client.get("/v1/me/unread", params={"cursor": "nope"}, headers=bob.headers), 422)


def test_receipts_and_deliveries_follow_the_members_positions(
    client: TestClient,
    settings: Settings,
    alice: Caller,
    bob: Caller,
    carol: Caller,
    chat: Json,
) -> None:
    add_member(settings, chat, carol, "member")
    seq = post(client, settings, chat, alice)
    message = client.get(_url(chat, "messages"), headers=alice.headers).json()["items"][-1]
    receipts_url = _url(chat, f"messages/{message['id']}/receipts")
    sent = client.get(receipts_url, headers=alice.headers).json()
    assert (sent["status"], sent["recipients"], sent["seq"]) == ("sent", 2, seq)
    client.post(_url(chat, "delivered"), json={"seq": seq}, headers=bob.headers)
    client.post(_url(chat, "delivered"), headers=carol.headers)
    assert client.get(receipts_url, headers=alice.headers).json()["status"] == "delivered"
    client.post(_url(chat, "read"), headers=bob.headers)
    client.post(_url(chat, "read"), headers=carol.headers)
    read = client.get(receipts_url, params={"limit": 1}, headers=bob.headers).json()
    assert (read["status"], read["read_count"], len(read["items"])) == ("read", 2, 1)
    assert read["next_cursor"] is not None
    deliveries = client.get(_url(chat, "deliveries"), headers=carol.headers).json()
    assert [(d["seq"], d["status"]) for d in deliveries["items"]] == [(seq, "read")]
    assert_error(
        client.get(_url(chat, f"messages/{MISSING_ID}/receipts"), headers=alice.headers), 404
    )


@pytest.mark.parametrize(
    ("method", "tail"),
    [
        ("GET", "read"),
        ("POST", "read"),
        ("POST", "delivered"),
        ("GET", "unread"),
        ("GET", "deliveries"),
        ("GET", f"messages/{MISSING_ID}/receipts"),
    ],
)
def test_read_routes_of_a_non_member_are_404(
    client: TestClient, settings: Settings, carol: Caller, chat: Json, method: str, tail: str
) -> None:
    response = client.request(method, _url(chat, tail), headers=carol.headers)
    assert_error(response, 404, "not_found")


def test_read_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths: dict[str, Any] = client.get("/openapi.json").json()["paths"]
    base = "/v1/conversations/{conversation_id}"
    assert {"get", "post"} <= set(paths[base + "/read"])
    for path in (
        base + "/delivered",
        base + "/unread",
        base + "/deliveries",
        base + "/messages/{message_id}/receipts",
        "/v1/me/unread",
        "/v1/me/unread/counts",
    ):
        assert path in paths, sorted(paths)
