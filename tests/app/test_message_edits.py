"""Edits, earlier versions, retraction and deletion over HTTP (README "Edits and retraction").

The edit window's clock is the stored ``created_at``, backdated with SQL; no test sleeps.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    append,
    assert_error,
    list_messages,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)


def _url(conversation_id: str, message_id: str, tail: str = "") -> str:
    return f"{messages_url(conversation_id)}/{message_id}{tail}"


def sql(settings: Settings, statement: str, *params: Any) -> None:
    """A change straight in the test's database (members, the clock)."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def backdate(settings: Settings, message: Json, seconds: float) -> None:
    sql(
        settings,
        "UPDATE messages SET created_at = now() - make_interval(secs => %s) WHERE id = %s",
        seconds,
        message["id"],
    )


def add_member(settings: Settings, conversation: Json, caller: Caller, role: str) -> None:
    # Ad-hoc: the members routes are another helper's (branch i10-members).
    sql(
        settings,
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES (%s, %s, %s)",
        conversation["id"],
        caller.id,
        role,
    )


def edit(client: TestClient, caller: Caller, message: Json, text: str, **fields: Any) -> Any:
    return client.patch(
        _url(message["conversation_id"], message["id"]),
        json={"parts": [text_part(text)], **fields},
        headers=caller.headers,
    )


def retract(client: TestClient, caller: Caller, message: Json) -> Any:
    return client.post(
        _url(message["conversation_id"], message["id"], "/retract"), headers=caller.headers
    )


def versions(client: TestClient, caller: Caller, message: Json, **params: Any) -> Any:
    return client.get(
        _url(message["conversation_id"], message["id"], "/versions"),
        params=params,
        headers=caller.headers,
    )


def delete(client: TestClient, caller: Caller, message: Json) -> Any:
    return client.delete(_url(message["conversation_id"], message["id"]), headers=caller.headers)


def test_edit_keeps_the_previous_version_and_sets_edited_at(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)
    message = append(client, alice, conversation["id"], "helo", metadata={"lang": "en"})
    assert message["edited_at"] is None

    response = edit(client, alice, message, "hello")

    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["content"], edited["seq"], edited["metadata"]) == ("hello", 1, {"lang": "en"})
    assert edited["edited_at"] is not None and edited["created_at"] == message["created_at"]
    again = edit(client, alice, message, "hello!").json()
    page = versions(client, alice, message).json()
    assert page["has_more"] is False
    assert [(v["version"], v["content"], v["parts"]) for v in page["items"]] == [
        (1, "helo", [text_part("helo")]),
        (2, "hello", [text_part("hello")]),
    ]
    assert [v["written_at"] for v in page["items"]] == [message["created_at"], edited["edited_at"]]
    assert {v["written_by"] for v in page["items"]} == {alice.id}
    assert list_messages(client, alice, conversation["id"])["items"] == [again]


def test_edit_after_the_window_is_409_naming_the_setting(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    conversation = make_conversation(client, alice)
    message = append(client, alice, conversation["id"], "v1")
    backdate(settings, message, 290)
    assert edit(client, alice, message, "in time").status_code == 200
    backdate(settings, message, 301)

    error = assert_error(edit(client, alice, message, "too late"), 409, "edit_window_closed")
    assert "APP_EDIT_WINDOW_SECONDS" in error["message"] and "300" in error["message"]
    assert_error(retract(client, alice, message), 409, "edit_window_closed")
    kept = client.get(_url(conversation["id"], message["id"]), headers=alice.headers).json()
    assert kept["content"] == "in time"
    # Metadata is not content: it changes at any age, without a version.
    response = client.patch(
        _url(conversation["id"], message["id"]), json={"metadata": {"k": 1}}, headers=alice.headers
    )
    assert response.status_code == 200 and response.json()["metadata"] == {"k": 1}
    assert len(versions(client, alice, message).json()["items"]) == 1


def test_the_window_is_the_setting(settings: Settings) -> None:
    longer = settings.model_copy(update={"app_edit_window_seconds": 3600})
    with TestClient(create_app(longer)) as client:
        alice = Caller(*make_user(client, "alice"))
        message = append(client, alice, make_conversation(client, alice)["id"], "v1")
        backdate(settings, message, 3000)
        assert edit(client, alice, message, "v2").status_code == 200
        backdate(settings, message, 3601)
        error = assert_error(edit(client, alice, message, "v3"), 409, "edit_window_closed")
        assert "3600" in error["message"]


def test_streaming_and_finalizing_are_not_edits(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    conversation = make_conversation(client, alice)
    started = append(
        client, alice, conversation["id"], role="assistant", parts=[], status="streaming"
    )
    backdate(settings, started, 3600)
    url = _url(conversation["id"], started["id"])

    for body in ({"append_parts": [text_part("Hi")]}, {"status": "complete"}):
        response = client.patch(url, json=body, headers=alice.headers)
        assert response.status_code == 200, response.text

    done = response.json()
    assert (done["content"], done["status"], done["edited_at"]) == ("Hi", "complete", None)
    assert versions(client, alice, started).json() == {"items": [], "has_more": False}


def test_retraction_leaves_a_tombstone_and_seq_stays_gapless(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)
    cid = conversation["id"]
    first, oops, last = (append(client, alice, cid, t) for t in ("a", "oops", "c"))
    edit(client, alice, oops, "oops, edited")

    response = retract(client, alice, oops)

    assert response.status_code == 200, response.text
    tombstone = response.json()
    assert (tombstone["id"], tombstone["seq"], tombstone["parent_seq"]) == (
        oops["id"],
        2,
        oops["parent_seq"],
    )
    assert (tombstone["parts"], tombstone["content"], tombstone["metadata"]) == ([], "", {})
    assert tombstone["retracted_at"] is not None
    items = list_messages(client, alice, cid)["items"]
    assert [m["seq"] for m in items] == [1, 2, 3] and items[1] == tombstone
    assert items[2]["parent_seq"] == 2
    assert versions(client, alice, oops).json()["items"] == []
    again = retract(client, alice, oops)
    assert (again.status_code, again.json()) == (200, tombstone)
    assert_error(edit(client, alice, oops, "back"), 409, "message_retracted")
    assert append(client, alice, cid, "d")["seq"] == 4


def test_versions_are_paged(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    message = append(client, alice, conversation["id"], "v1")
    for n in range(2, 6):
        edit(client, alice, message, f"v{n}")

    first = versions(client, alice, message, limit=3).json()
    rest = versions(client, alice, message, limit=3, after=3).json()

    assert ([v["version"] for v in first["items"]], first["has_more"]) == ([1, 2, 3], True)
    assert ([v["version"] for v in rest["items"]], rest["has_more"]) == ([4], False)
    for bad in ({"limit": 0}, {"limit": 201}, {"after": -1}, {"after": "x"}, {"after": 2**31}):
        assert_error(versions(client, alice, message, **bad), 422)


def test_missing_message_is_404_on_every_route(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    missing = {"conversation_id": conversation["id"], "id": MISSING_ID}
    for response in (
        edit(client, alice, missing, "x"),
        retract(client, alice, missing),
        versions(client, alice, missing),
        delete(client, alice, missing),
    ):
        assert_error(response, 404, "not_found")


# --- role matrix ------------------------------------------------------------------------

ROLES = ("owner", "admin", "moderator", "member", "former", "stranger")
# What each caller gets on the message another member (a plain member) wrote.
EXPECTED = {
    "edit": {"owner": 403, "admin": 403, "moderator": 403, "member": 403},
    "retract": {"owner": 403, "admin": 403, "moderator": 403, "member": 403},
    "versions": {"owner": 200, "admin": 200, "moderator": 200, "member": 200},
    "delete": {"owner": 204, "admin": 204, "moderator": 204, "member": 403},
}


@pytest.fixture
def group(client: TestClient, settings: Settings) -> tuple[Json, dict[str, Caller]]:
    """A conversation with a member of each role, the writer (a member), a former member and a
    stranger."""
    people = {name: Caller(*make_user(client, name)) for name in (*ROLES, "writer")}
    conversation = make_conversation(client, people["owner"])
    for name, role in (
        ("admin", "admin"),
        ("moderator", "moderator"),
        ("member", "member"),
        ("writer", "member"),
        ("former", "member"),
    ):
        add_member(settings, conversation, people[name], role)
    sql(
        settings,
        "DELETE FROM conversation_members WHERE conversation_id = %s AND user_id = %s",
        conversation["id"],
        people["former"].id,
    )
    return conversation, people


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(
    client: TestClient, group: tuple[Json, dict[str, Caller]], action: str, role: str
) -> None:
    conversation, people = group
    writer, caller = people["writer"], people[role]
    message = append(client, writer, conversation["id"], "mine")
    calls = {
        "edit": lambda who: edit(client, who, message, "changed"),
        "retract": lambda who: retract(client, who, message),
        "versions": lambda who: versions(client, who, message),
        "delete": lambda who: delete(client, who, message),
    }

    response = calls[action](caller)

    status = EXPECTED[action].get(role, 404)
    assert response.status_code == status, response.text
    if status >= 400:
        error = assert_error(response, status, {403: "forbidden", 404: "not_found"}[status])
        assert "mine" not in error["message"]
        stored = client.get(_url(conversation["id"], message["id"]), headers=writer.headers).json()
        assert stored == message  # nothing changed
        if action in ("edit", "retract"):  # while the sender still may
            assert calls[action](writer).status_code == 200
        if action == "delete":
            assert_error(calls["delete"](writer), 403, "forbidden")  # a sender retracts
