"""Branches over HTTP: siblings, activating a message, reading a branch by its leaf; members
only (404 for anyone else), 403 for a role without switch_branch, 422 for bad input."""

from __future__ import annotations

from typing import Any

import psycopg

from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    list_messages,
    make_conversation,
)


def base(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}"


def activate(
    client: TestClient, caller: Caller, conversation_id: str, message_id: str, **body: Any
) -> Json:
    response = client.post(
        f"{base(conversation_id)}/messages/{message_id}/activate",
        json=body or None,
        headers=caller.headers,
    )
    assert response.status_code == 200, response.text
    switched: Json = response.json()
    return switched


def siblings(client: TestClient, caller: Caller, conversation_id: str, message_id: str) -> Json:
    response = client.get(
        f"{base(conversation_id)}/messages/{message_id}/siblings", headers=caller.headers
    )
    assert response.status_code == 200, response.text
    page: Json = response.json()
    return page


def texts(page: Json) -> list[str]:
    return [m["parts"][0]["text"] for m in page["items"]]


def sql(settings: Settings, statement: str, *params: Any) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def join(settings: Settings, conversation_id: str, caller: Caller, role: str = "member") -> None:
    sql(
        settings,
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES (%s, %s, %s)",
        conversation_id,
        caller.id,
        role,
    )


def test_edit_and_switch_over_http(client: TestClient, alice: Caller) -> None:
    conv = make_conversation(client, alice)["id"]
    q1 = append(client, alice, conv, "q1")
    a1 = append(client, alice, conv, "a1", role="assistant")
    q2 = append(client, alice, conv, "q2")
    a2 = append(client, alice, conv, "a2", role="assistant")
    # Edit q2: end the branch at a1, then append the new version there.
    switched = activate(client, alice, conv, a1["id"], descend=False)
    assert switched == {
        "conversation_id": conv,
        "leaf_seq": a1["seq"],
        "fork_seq": a1["seq"],
        "activated": 0,
        "deactivated": 2,
    }
    q2b = append(client, alice, conv, "q2 edited")
    assert q2b["parent_seq"] == a1["seq"]
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1", "q2 edited"]
    versions = siblings(client, alice, conv, q2["id"])
    assert [m["id"] for m in versions["items"]] == [q2["id"], q2b["id"]]
    assert (versions["active_id"], versions["has_more"]) == (q2b["id"], False)
    # The old branch, by its leaf.
    response = client.get(f"{base(conv)}/branches/{a2['id']}/messages", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert texts(response.json()) == ["q1", "a1", "q2", "a2"]
    # Back to the first version: its branch as it was left (down to a2).
    switched = activate(client, alice, conv, q2["id"])
    assert (switched["leaf_seq"], switched["activated"], switched["deactivated"]) == (4, 2, 1)
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1", "q2", "a2"]
    assert siblings(client, alice, conv, q1["id"])["active_id"] == q1["id"]


def test_branch_pages_backward(client: TestClient, alice: Caller) -> None:
    conv = make_conversation(client, alice)["id"]
    sent = [append(client, alice, conv, f"m{i}") for i in range(7)]
    url = f"{base(conv)}/branches/{sent[-1]['id']}/messages"
    first = client.get(url, params={"limit": 3}, headers=alice.headers).json()
    assert (texts(first), first["has_more"]) == (["m4", "m5", "m6"], True)
    before = first["items"][0]["seq"]
    second = client.get(url, params={"limit": 3, "before": before}, headers=alice.headers).json()
    assert (texts(second), second["has_more"]) == (["m1", "m2", "m3"], True)
    before = second["items"][0]["seq"]
    last = client.get(url, params={"limit": 3, "before": before}, headers=alice.headers).json()
    assert (texts(last), last["has_more"]) == (["m0"], False)


def test_outsiders_get_404(client: TestClient, alice: Caller, bob: Caller) -> None:
    conv = make_conversation(client, alice)["id"]
    q1 = append(client, alice, conv, "q1")
    for method, url in [
        ("GET", f"{base(conv)}/messages/{q1['id']}/siblings"),
        ("POST", f"{base(conv)}/messages/{q1['id']}/activate"),
        ("GET", f"{base(conv)}/branches/{q1['id']}/messages"),
    ]:
        assert_error(client.request(method, url, headers=bob.headers), 404, "not_found")
        # A member asking for a message that is not there: 404 too.
        missing = url.replace(q1["id"], MISSING_ID)
        assert_error(client.request(method, missing, headers=alice.headers), 404, "not_found")


def test_role_without_switch_branch_gets_403(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    conv = make_conversation(client, alice)["id"]
    join(settings, conv, bob)
    q1 = append(client, alice, conv, "q1")
    a1 = append(client, alice, conv, "a1", role="assistant")
    activate(client, bob, conv, q1["id"], descend=False)  # every role may, by default
    activate(client, bob, conv, a1["id"])
    sql(
        settings,
        "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'switch_branch'",
    )
    url = f"{base(conv)}/messages/{q1['id']}/activate"
    response = client.post(url, json={"descend": False}, headers=bob.headers)
    assert_error(response, 403, "forbidden")
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1"]
    # Reading needs only 'read'.
    assert siblings(client, bob, conv, a1["id"])["active_id"] == a1["id"]


def test_bad_input_is_422_and_changes_nothing(client: TestClient, alice: Caller) -> None:
    conv = make_conversation(client, alice)["id"]
    q1 = append(client, alice, conv, "q1")
    append(client, alice, conv, "a1", role="assistant")
    activate_url = f"{base(conv)}/messages/{q1['id']}/activate"
    for body in ({"descend": "yes"}, {"descend": None}, {"other": 1}, [1]):
        response = client.post(activate_url, json=body, headers=alice.headers)
        assert_error(response, 422)
    for url, params in [
        (f"{base(conv)}/messages/{q1['id']}/siblings", {"limit": 0}),
        (f"{base(conv)}/messages/{q1['id']}/siblings", {"after": -1}),
        (f"{base(conv)}/branches/{q1['id']}/messages", {"limit": 10_000}),
        (f"{base(conv)}/branches/{q1['id']}/messages", {"before": "x"}),
    ]:
        assert_error(client.get(url, params=params, headers=alice.headers), 422)
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1"]


def test_append_with_parent_id_starts_a_branch(client: TestClient, alice: Caller) -> None:
    conv = make_conversation(client, alice)["id"]
    q1 = append(client, alice, conv, "q1")
    a1 = append(client, alice, conv, "a1", role="assistant")
    q2 = append(client, alice, conv, "q2")
    # Regenerate a1 (parent q1), then edit q2 under the new answer's branch... as siblings.
    a1b = append(client, alice, conv, "a1b", role="assistant", parent_id=q1["id"])
    assert a1b["parent_seq"] == q1["seq"]
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1b"]
    versions = siblings(client, alice, conv, a1["id"])
    assert ([m["id"] for m in versions["items"]], versions["active_id"]) == (
        [a1["id"], a1b["id"]],
        a1b["id"],
    )
    # A retry of the same id changes nothing: 200, the stored message, the same branch.
    fixed = "01900000-0000-7000-8000-0000000000aa"
    body = {"id": fixed, "role": "user", "parts": [{"type": "text", "text": "q2b"}]}
    first = client.post(
        f"{base(conv)}/messages", json={**body, "parent_id": a1["id"]}, headers=alice.headers
    )
    assert first.status_code == 201, first.text
    append(client, alice, conv, "a2b", role="assistant")
    retry = client.post(
        f"{base(conv)}/messages", json={**body, "parent_id": a1["id"]}, headers=alice.headers
    )
    assert retry.status_code == 200, retry.text
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1", "q2b", "a2b"]
    # The old branches stay readable.
    old = client.get(f"{base(conv)}/branches/{q2['id']}/messages", headers=alice.headers)
    assert texts(old.json()) == ["q1", "a1", "q2"]
    # A parent that is not a message of the conversation: 404, nothing appended.
    response = client.post(
        f"{base(conv)}/messages",
        json={"role": "user", "parts": [{"type": "text", "text": "x"}], "parent_id": MISSING_ID},
        headers=alice.headers,
    )
    assert_error(response, 404, "not_found")
    assert texts(list_messages(client, alice, conv)) == ["q1", "a1", "q2b", "a2b"]
