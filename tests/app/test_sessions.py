"""Chat sessions over HTTP: messages carry their session; list and end sessions."""

from __future__ import annotations

from typing import Any

import psycopg

from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    TestClient,
    append,
    assert_error,
    make_conversation,
    make_user,
)


def sql(settings: Settings, statement: str, *params: Any) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def sessions_url(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}/sessions"


def test_messages_carry_their_session_and_a_pause_past_the_timeout_starts_the_next(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    conv = make_conversation(client, alice)
    assert append(client, alice, conv["id"])["session_no"] == 1
    sql(
        settings,
        "UPDATE conversations SET session_active_at = now() - interval '901 seconds' WHERE id = %s",
        conv["id"],
    )
    assert append(client, alice, conv["id"])["session_no"] == 2
    page = client.get(sessions_url(conv["id"]), headers=alice.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [s["session_no"] for s in body["items"]] == [2, 1] and body["has_more"] is False
    oldest = client.get(
        sessions_url(conv["id"]), params={"after": 0, "limit": 1}, headers=alice.headers
    )
    assert [s["session_no"] for s in oldest.json()["items"]] == [1]
    assert oldest.json()["has_more"] is True


def test_end_session_by_role(client: TestClient, settings: Settings, alice: Caller) -> None:
    conv = make_conversation(client, alice)
    url = sessions_url(conv["id"]) + "/end"
    assert_error(client.post(url, headers=alice.headers), 409, "conflict")
    append(client, alice, conv["id"])
    member = Caller(*make_user(client, "member"))
    moderator = Caller(*make_user(client, "moderator"))
    stranger = Caller(*make_user(client, "stranger"))
    for who, role in ((member, "member"), (moderator, "moderator")):
        sql(
            settings,
            "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES (%s, %s, %s)",
            conv["id"],
            who.id,
            role,
        )
    assert_error(client.post(url, headers=member.headers), 403, "forbidden")
    assert_error(client.post(url, headers=stranger.headers), 404, "not_found")
    assert_error(client.get(sessions_url(conv["id"]), headers=stranger.headers), 404)
    assert_error(client.post(sessions_url(MISSING_ID) + "/end", headers=alice.headers), 404)
    ended = client.post(url, headers=moderator.headers)
    assert ended.status_code == 200, ended.text
    assert ended.json()["session_no"] == 1 and ended.json()["open"] is False
    assert append(client, member, conv["id"])["session_no"] == 2


def test_sessions_paging_parameters_are_checked(client: TestClient, alice: Caller) -> None:
    conv = make_conversation(client, alice)
    url = sessions_url(conv["id"])
    assert_error(client.get(url, params={"before": 2, "after": 1}, headers=alice.headers), 422)
    assert_error(client.get(url, params={"limit": 0}, headers=alice.headers), 422)
    assert_error(client.get(url, params={"after": -1}, headers=alice.headers), 422)
    empty = client.get(url, headers=alice.headers)
    assert empty.status_code == 200 and empty.json() == {"items": [], "has_more": False}
