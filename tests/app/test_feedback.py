"""Routes of feedback on messages: set (201/200), get one's own, withdraw, list; bounds;
404 for non-members and 403 for a role without the right (read from conversation_rights)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

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


def sql(settings: Settings, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run ad-hoc SQL on the test's database (the test's own doing, not the app's)."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cursor = conn.execute(statement, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def add_member(settings: Settings, conversation: Json, caller: Caller, role: str) -> None:
    """Ad-hoc SQL, the test's own doing, until the members routes land."""
    sql(
        settings,
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES (%s, %s, %s)"
        " ON CONFLICT (conversation_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        conversation["id"],
        caller.id,
        role,
    )


@pytest.fixture
def chat(client: TestClient, settings: Settings, alice: Caller, bob: Caller) -> tuple[Json, Json]:
    """A conversation of alice's (its owner) with bob as a member, and a message in it."""
    conversation = make_conversation(client, alice, title="team")
    add_member(settings, conversation, bob, "member")
    return conversation, append(client, alice, conversation["id"], "the answer")


def url(message: Json) -> str:
    return f"/v1/conversations/{message['conversation_id']}/messages/{message['id']}/feedback"


def counts(settings: Settings, message: Json) -> tuple[int, int]:
    [row] = sql(
        settings,
        "SELECT feedback_up, feedback_down FROM messages WHERE conversation_id = %s AND id = %s",
        message["conversation_id"],
        message["id"],
    )
    return row[0], row[1]


def test_feedback_set_change_get_list_withdraw(
    client: TestClient, settings: Settings, chat: tuple[Json, Json], alice: Caller, bob: Caller
) -> None:
    conversation, message = chat
    response = client.put(url(message), json={"rating": "up"}, headers=bob.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["rating"] == "up" and created["score"] is None and created["comment"] is None
    assert (created["message_id"], created["seq"], created["user_id"]) == (
        message["id"],
        message["seq"],
        bob.id,
    )
    assert counts(settings, message) == (1, 0)

    body = {"rating": "down", "score": 3, "comment": "cited the wrong year"}
    response = client.put(url(message), json=body, headers=bob.headers)
    assert response.status_code == 200, response.text
    assert (
        response.json()["score"] == 3.0 and response.json()["created_at"] == created["created_at"]
    )
    assert counts(settings, message) == (0, 1)
    assert client.put(url(message), json={"rating": "up"}, headers=alice.headers).status_code == 201
    assert counts(settings, message) == (1, 1)

    own = client.get(url(message), headers=bob.headers)
    assert own.status_code == 200 and own.json()["comment"] == "cited the wrong year"

    listed = client.get(f"/v1/conversations/{conversation['id']}/feedback", headers=bob.headers)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["next_cursor"] is None
    assert {(f["user_id"], f["rating"]) for f in page["items"]} == {
        (alice.id, "up"),
        (bob.id, "down"),
    }
    downs = client.get(
        f"/v1/conversations/{conversation['id']}/feedback",
        params={"rating": "down"},
        headers=alice.headers,
    ).json()
    assert [f["user_id"] for f in downs["items"]] == [bob.id]

    assert client.delete(url(message), headers=bob.headers).status_code == 204
    assert counts(settings, message) == (1, 0)
    read = client.get(
        f"/v1/conversations/{conversation['id']}/messages/{message['id']}", headers=bob.headers
    )
    assert (read.json()["feedback_up"], read.json()["feedback_down"]) == (1, 0)
    assert_error(client.get(url(message), headers=bob.headers), 404, "not_found")
    assert_error(client.delete(url(message), headers=bob.headers), 404, "not_found")


def test_feedback_list_pages_with_a_cursor(
    client: TestClient, settings: Settings, chat: tuple[Json, Json], alice: Caller, bob: Caller
) -> None:
    conversation, first = chat
    second = append(client, alice, conversation["id"], "another")
    for message in (first, second):
        for caller in (alice, bob):
            assert client.put(
                url(message), json={"rating": "up"}, headers=caller.headers
            ).is_success
    seen: list[tuple[int, str]] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        response = client.get(
            f"/v1/conversations/{conversation['id']}/feedback", params=params, headers=bob.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [(f["seq"], f["user_id"]) for f in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == sorted((m["seq"], c.id) for m in (first, second) for c in (alice, bob))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"rating": "meh"}, 422),
        ({"score": 1}, 422),
        ({"rating": "up", "score": 10.5}, 422),
        ({"rating": "up", "score": -1}, 422),
        ({"rating": "up", "score": "7"}, 422),
        ({"rating": "up", "comment": "a\u0000b"}, 422),
        ({"rating": "up", "comment": "x" * 4001}, 422),
        ({"rating": "up", "nope": 1}, 422),
    ],
)
def test_feedback_bad_input_is_refused_and_changes_nothing(
    client: TestClient,
    settings: Settings,
    chat: tuple[Json, Json],
    bob: Caller,
    body: Json,
    status: int,
) -> None:
    _, message = chat
    assert_error(client.put(url(message), json=body, headers=bob.headers), status)
    assert counts(settings, message) == (0, 0)
    assert_error(client.get(url(message), headers=bob.headers), 404)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400", "-1e400"])
def test_feedback_score_that_is_not_a_finite_number_is_refused(
    client: TestClient, settings: Settings, chat: tuple[Json, Json], bob: Caller, number: str
) -> None:
    _, message = chat
    response = client.put(
        url(message),
        content='{"rating": "up", "score": ' + number + "}",
        headers={**bob.headers, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert_error(response, response.status_code)
    assert counts(settings, message) == (0, 0)


def test_feedback_bad_list_parameters_are_422(
    client: TestClient, chat: tuple[Json, Json], bob: Caller
) -> None:
    conversation, _ = chat
    many = f"/v1/conversations/{conversation['id']}/feedback"
    for params in ({"rating": "sideways"}, {"cursor": "bm9wZQ"}, {"limit": 0}, {"limit": 201}):
        assert_error(client.get(many, params=params, headers=bob.headers), 422)


def test_feedback_of_non_members_and_former_members_is_404(
    client: TestClient, settings: Settings, chat: tuple[Json, Json], bob: Caller
) -> None:
    conversation, message = chat
    carol = Caller(*make_user(client, "carol"))
    assert client.put(url(message), json={"rating": "up"}, headers=bob.headers).status_code == 201
    sql(
        settings,
        "DELETE FROM conversation_members WHERE conversation_id = %s AND user_id = %s",
        conversation["id"],
        bob.id,
    )
    many = f"/v1/conversations/{conversation['id']}/feedback"
    for outsider in (carol, bob):
        assert_error(
            client.put(url(message), json={"rating": "down"}, headers=outsider.headers), 404
        )
        assert_error(client.get(url(message), headers=outsider.headers), 404)
        assert_error(client.delete(url(message), headers=outsider.headers), 404)
        assert_error(client.get(many, headers=outsider.headers), 404)
    assert counts(settings, message) == (1, 0)
    missing = {**message, "conversation_id": MISSING_ID}
    assert_error(client.put(url(missing), json={"rating": "up"}, headers=bob.headers), 404)


def test_feedback_missing_message_is_404(
    client: TestClient, chat: tuple[Json, Json], bob: Caller
) -> None:
    _, message = chat
    missing = {**message, "id": MISSING_ID}
    assert_error(client.put(url(missing), json={"rating": "up"}, headers=bob.headers), 404)
    assert_error(client.get(url(missing), headers=bob.headers), 404)
    assert_error(client.delete(url(missing), headers=bob.headers), 404)


def test_feedback_without_the_right_is_403(
    client: TestClient, settings: Settings, chat: tuple[Json, Json], alice: Caller, bob: Caller
) -> None:
    """The check reads conversation_rights: without the row ('member', 'feedback') a member
    may not set or withdraw feedback, and without ('member', 'read') may not read it."""
    conversation, message = chat
    assert client.put(url(message), json={"rating": "up"}, headers=bob.headers).status_code == 201
    sql(settings, "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'feedback'")
    assert_error(
        client.put(url(message), json={"rating": "down"}, headers=bob.headers), 403, "forbidden"
    )
    assert_error(client.delete(url(message), headers=bob.headers), 403, "forbidden")
    assert client.get(url(message), headers=bob.headers).json()["rating"] == "up"
    assert (
        client.put(url(message), json={"rating": "down"}, headers=alice.headers).status_code == 201
    )
    assert counts(settings, message) == (1, 1)
    sql(settings, "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'read'")
    many = f"/v1/conversations/{conversation['id']}/feedback"
    assert_error(client.get(url(message), headers=bob.headers), 403, "forbidden")
    assert_error(client.get(many, headers=bob.headers), 403, "forbidden")
    assert client.get(many, headers=alice.headers).status_code == 200


def test_feedback_on_a_retracted_message_is_409(
    client: TestClient, settings: Settings, chat: tuple[Json, Json], bob: Caller
) -> None:
    _, message = chat
    assert client.put(url(message), json={"rating": "up"}, headers=bob.headers).status_code == 201
    sql(settings, "UPDATE messages SET retracted_at = now() WHERE id = %s", message["id"])
    assert_error(client.put(url(message), json={"rating": "down"}, headers=bob.headers), 409)
    assert client.delete(url(message), headers=bob.headers).status_code == 204
    assert counts(settings, message) == (0, 0)
