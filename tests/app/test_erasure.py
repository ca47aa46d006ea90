"""Erasing a user over HTTP (README "Erasing a user"): DELETE /v1/users/{id} with the admin
token, the report of counts; the completeness proof itself is tests/dal/test_erasure.py."""

from __future__ import annotations

import psycopg

from tests.app.conftest import ADMIN, MISSING_ID, Caller, TestClient, append, make_conversation


def test_the_admin_erases_a_user_and_gets_the_counts(
    client: TestClient, alice: Caller, bob: Caller, database_url: str
) -> None:
    mine = make_conversation(client, alice)
    append(client, alice, mine["id"])
    append(client, alice, mine["id"])
    theirs = make_conversation(client, bob)
    added = client.post(
        f"/v1/conversations/{theirs['id']}/members", json={"user_id": alice.id}, headers=bob.headers
    )
    assert added.status_code == 201, added.text
    said = append(client, alice, theirs["id"])
    append(client, bob, theirs["id"])

    response = client.delete(f"/v1/users/{alice.id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["user_id"] == alice.id and report["username"] == "alice"
    assert report["deleted"]["conversations"] == 1
    assert report["deleted"]["messages"] == 2
    assert report["deleted"]["users"] == 1
    assert report["deleted"]["api_tokens"] == 1
    # her message a tombstone, and bob's system message that added her names null instead
    assert report["anonymized"]["messages"] == 2
    assert report["batches"] >= 10

    # Gone: the token, the user; bob's conversation reads on, alice's message a tombstone.
    assert client.get("/v1/me", headers=alice.headers).status_code == 401
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).status_code == 404
    page = client.get(f"/v1/conversations/{theirs['id']}/messages", headers=bob.headers).json()
    erased = [m for m in page["items"] if m["id"] == said["id"]]
    assert erased[0]["parts"] == [] and erased[0]["sender_id"] is None
    assert erased[0]["retracted_at"] is not None
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM conversation_members WHERE user_id = %s", (alice.id,)
        ).fetchone()
        assert row == (0,)

    # Again: the user is no more.
    again = client.delete(f"/v1/users/{alice.id}", headers=ADMIN)
    assert again.status_code == 404, again.text


def test_erasing_needs_the_admin_token_and_a_known_user(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    refused = client.delete(f"/v1/users/{bob.id}", headers=alice.headers)
    assert refused.status_code == 403, refused.text
    assert client.get("/v1/me", headers=bob.headers).status_code == 200  # nothing changed
    assert client.get(f"/v1/users/{bob.id}", headers=ADMIN).json()["deactivated_at"] is None
    missing = client.delete(f"/v1/users/{MISSING_ID}", headers=ADMIN)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "not_found"
    assert client.delete(f"/v1/users/{bob.id}").status_code == 401
