"""Members of a shared conversation over HTTP: a role matrix over every route and action
(owner, admin, moderator, member, former member, non-member), and the answers of each route."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    TestClient,
    assert_error,
    list_messages,
    make_conversation,
    make_user,
)

ROLES = ("owner", "admin", "moderator", "member", "former", "stranger")


def members_url(conversation_id: str, user_id: str | None = None) -> str:
    url = f"/v1/conversations/{conversation_id}/members"
    return url if user_id is None else f"{url}/{user_id}"


def shared(client: TestClient, owner: Caller) -> str:
    """A new conversation of ``owner``, who is its owner member (creating it made them so)."""
    return str(make_conversation(client, owner)["id"])


def add(
    client: TestClient, by: Caller, conversation_id: str, user: Caller, role: str = "member"
) -> httpx.Response:
    return client.post(
        members_url(conversation_id), json={"user_id": user.id, "role": role}, headers=by.headers
    )


def stored(settings: Settings, conversation_id: str) -> dict[str, Any]:
    """What a change may touch, read straight from the database."""
    with psycopg.connect(str(settings.database_url)) as conn:
        conversation = conn.execute(
            "SELECT user_id, member_count, last_seq, message_count FROM conversations"
            " WHERE id = %s",
            (conversation_id,),
        ).fetchone()
        roles = conn.execute(
            "SELECT user_id::text, role FROM conversation_members WHERE conversation_id = %s"
            " ORDER BY user_id",
            (conversation_id,),
        ).fetchall()
    return {"conversation": conversation, "roles": dict(roles)}  # type: ignore[arg-type]


@pytest.fixture
def cast(client: TestClient) -> dict[str, Caller]:
    """Everyone the matrix needs: one user per role, the member each action targets, and a
    newcomer to add."""
    names = (*ROLES, "target", "newcomer")
    return {name: Caller(*make_user(client, name)) for name in names}


def group(client: TestClient, settings: Settings, cast: dict[str, Caller]) -> str:
    """A fresh conversation: owner, admin, moderator, member and target (a member), and a former
    member (added, then left)."""
    conversation_id = shared(client, cast["owner"])
    for name, role in (
        ("admin", "admin"),
        ("moderator", "moderator"),
        ("member", "member"),
        ("target", "member"),
        ("former", "member"),
    ):
        assert add(client, cast["owner"], conversation_id, cast[name], role).status_code == 201
    former = cast["former"]
    left = client.delete(members_url(conversation_id, former.id), headers=former.headers)
    assert left.status_code == 204, left.text
    return conversation_id


Action = Callable[[TestClient, dict[str, Caller], Caller, str], httpx.Response]

# Each action as the caller does it, and the status each role gets (README "Roles").
MATRIX: dict[str, tuple[Action, dict[str, int]]] = {
    "list": (
        lambda client, cast, me, cid: client.get(members_url(cid), headers=me.headers),
        {"owner": 200, "admin": 200, "moderator": 200, "member": 200},
    ),
    "add": (
        lambda client, cast, me, cid: add(client, me, cid, cast["newcomer"]),
        {"owner": 201, "admin": 201, "moderator": 403, "member": 403},
    ),
    "change_role": (
        lambda client, cast, me, cid: client.patch(
            members_url(cid, cast["target"].id), json={"role": "moderator"}, headers=me.headers
        ),
        {"owner": 200, "admin": 200, "moderator": 403, "member": 403},
    ),
    "remove": (
        lambda client, cast, me, cid: client.delete(
            members_url(cid, cast["target"].id), headers=me.headers
        ),
        {"owner": 204, "admin": 204, "moderator": 204, "member": 403},
    ),
    "leave": (
        lambda client, cast, me, cid: client.delete(members_url(cid, me.id), headers=me.headers),
        {"owner": 204, "admin": 204, "moderator": 204, "member": 204},
    ),
}


@pytest.mark.parametrize("action", list(MATRIX))
def test_role_matrix(
    client: TestClient, settings: Settings, cast: dict[str, Caller], action: str
) -> None:
    call, expected = MATRIX[action]
    got: dict[str, int] = {}
    for role in ROLES:
        conversation_id = group(client, settings, cast)
        before = stored(settings, conversation_id)
        response = call(client, cast, cast[role], conversation_id)
        got[role] = response.status_code
        if response.status_code >= 400:
            error = assert_error(response, response.status_code)
            if response.status_code == 404:
                # a non-member learns nothing: the conversation is "not found"
                assert "conversation" in error["message"], error
            assert stored(settings, conversation_id) == before, (action, role)
        elif action != "list":
            assert stored(settings, conversation_id) != before, (action, role)
    # former members and non-members are not told the conversation exists
    assert got == {**expected, "former": 404, "stranger": 404}


def test_add_member_answers_201_then_200_for_the_same_role_and_409_for_another(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    conversation_id = shared(client, alice)
    first = add(client, alice, conversation_id, bob, "moderator")
    assert first.status_code == 201, first.text
    assert first.headers["location"] == members_url(conversation_id, bob.id)
    body = first.json()
    assert set(body) == {
        "conversation_id",
        "user_id",
        "role",
        "joined_at",
        "last_read_seq",
        "added_by",
    }
    assert (body["user_id"], body["role"], body["added_by"]) == (bob.id, "moderator", alice.id)
    again = add(client, alice, conversation_id, bob, "moderator")
    assert again.status_code == 200 and again.json() == body
    assert_error(add(client, alice, conversation_id, bob, "member"), 409, "conflict")
    # bob sees the conversation's members
    page = client.get(members_url(conversation_id), headers=bob.headers).json()
    assert [(m["user_id"], m["role"]) for m in page["items"]] == [
        (alice.id, "owner"),
        (bob.id, "moderator"),
    ]
    assert page["next_cursor"] is None


def test_add_member_refuses_bad_input_and_unknown_users(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    conversation_id = shared(client, alice)
    before = stored(settings, conversation_id)
    url = members_url(conversation_id)
    for body in ({"user_id": "x"}, {"user_id": MISSING_ID, "role": "boss"}, {}, {"role": "member"}):
        assert_error(client.post(url, json=body, headers=alice.headers), 422)
    error = assert_error(
        client.post(url, json={"user_id": MISSING_ID}, headers=alice.headers), 404, "not_found"
    )
    assert "user" in error["message"]
    assert stored(settings, conversation_id) == before


def test_add_member_beyond_app_max_members_is_429(
    settings: Settings, alice: Caller, bob: Caller, client: TestClient
) -> None:
    carol = Caller(*make_user(client, "carol"))
    with TestClient(create_app(settings.model_copy(update={"app_max_members": 2}))) as small:
        conversation_id = shared(small, alice)
        assert add(small, alice, conversation_id, bob).status_code == 201
        error = assert_error(add(small, alice, conversation_id, carol), 429, "limit_reached")
        assert "APP_MAX_MEMBERS" in error["message"]


def test_direct_conversation_holds_two_members(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    carol = Caller(*make_user(client, "carol"))
    conversation_id = shared(client, alice)
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        conn.execute("UPDATE conversations SET kind = 'direct' WHERE id = %s", (conversation_id,))
    assert add(client, alice, conversation_id, bob).status_code == 201
    assert_error(add(client, alice, conversation_id, carol), 409, "direct_conversation_full")


def test_change_role_to_owner_hands_ownership_over(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    conversation_id = shared(client, alice)
    assert add(client, alice, conversation_id, bob).status_code == 201
    response = client.patch(
        members_url(conversation_id, bob.id), json={"role": "owner"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "owner"
    roles = {
        m["user_id"]: m["role"]
        for m in client.get(members_url(conversation_id), headers=bob.headers).json()["items"]
    }
    assert roles == {alice.id: "admin", bob.id: "owner"}
    assert stored(settings, conversation_id)["conversation"][0] == uuid.UUID(bob.id)
    # bob, the owner, reads the history: the handover is in it
    page = list_messages(client, bob, conversation_id)
    [*_, last] = page["items"]
    assert last["role"] == "system"
    assert [p["data"] for p in last["parts"]] == [
        {"action": "role_changed", "user_id": bob.id, "role": "owner", "by": alice.id},
        {"action": "role_changed", "user_id": alice.id, "role": "admin", "by": alice.id},
    ]


def test_owner_alone_may_not_leave_and_a_leaving_owner_hands_on(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    conversation_id = shared(client, alice)
    error = assert_error(
        client.delete(members_url(conversation_id, alice.id), headers=alice.headers), 409
    )
    assert "delete the conversation" in error["message"]
    assert add(client, alice, conversation_id, bob).status_code == 201
    left = client.delete(members_url(conversation_id, alice.id), headers=alice.headers)
    assert left.status_code == 204, left.text
    page = client.get(members_url(conversation_id), headers=bob.headers).json()
    assert [(m["user_id"], m["role"]) for m in page["items"]] == [(bob.id, "owner")]
    assert_error(client.get(members_url(conversation_id), headers=alice.headers), 404)


def test_membership_changes_are_system_messages_with_gapless_seq(
    client: TestClient, settings: Settings, cast: dict[str, Caller]
) -> None:
    conversation_id = group(client, settings, cast)
    owner = cast["owner"]
    page = list_messages(client, owner, conversation_id)
    messages: list[Json] = page["items"]
    assert [m["seq"] for m in messages] == list(range(1, 7))
    assert all(m["role"] == "system" for m in messages)
    data = [m["parts"][0]["data"] for m in messages]
    assert [(d["action"], d["user_id"], d["role"]) for d in data] == [
        ("added", cast["admin"].id, "admin"),
        ("added", cast["moderator"].id, "moderator"),
        ("added", cast["member"].id, "member"),
        ("added", cast["target"].id, "member"),
        ("added", cast["former"].id, "member"),
        ("left", cast["former"].id, "member"),
    ]
    assert [d["by"] for d in data] == [owner.id] * 5 + [cast["former"].id]
    assert [m["parts"][0]["type"] for m in messages] == ["data-member"] * 6
