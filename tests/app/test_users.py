"""Users (admin routes) and the caller's own profile (/v1/me)."""

from __future__ import annotations

from uuid import UUID

import pytest

from tests.app.conftest import (
    ADMIN,
    MISSING_ID,
    Caller,
    TestClient,
    assert_error,
    auth,
    make_user,
    ts,
)


def test_create_user_with_admin_token_returns_user_and_working_token(client: TestClient) -> None:
    response = client.post(
        "/v1/users",
        json={
            "username": "  Alice.Smith ",
            "display_name": "Alice Smith",
            "avatar_url": "https://example.com/a.png",
            "metadata": {"plan": "pro", "seats": 3, "tags": ["a", "b"], "nested": {"x": None}},
        },
        headers=ADMIN,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "token", "token_id", "token_expires_at"}
    assert body["token_expires_at"] is None  # no token_expires_in: it never expires
    user = body["user"]
    assert user["username"] == "alice.smith"  # trimmed and lower-cased
    assert user["display_name"] == "Alice Smith"
    assert user["avatar_url"] == "https://example.com/a.png"
    assert user["metadata"] == {
        "plan": "pro",
        "seats": 3,
        "tags": ["a", "b"],
        "nested": {"x": None},
    }
    assert user["deactivated_at"] is None
    UUID(body["token_id"])
    assert response.headers["location"] == f"/v1/users/{user['id']}"
    me = client.get("/v1/me", headers=auth(body["token"]))
    assert me.status_code == 200
    assert me.json() == user


def test_create_user_minimal_body_gets_defaults(client: TestClient) -> None:
    user, _ = make_user(client, "carol")

    assert user["display_name"] is None
    assert user["avatar_url"] is None
    assert user["metadata"] == {}


def test_create_user_taken_username_in_other_case_conflicts(client: TestClient) -> None:
    user, token = make_user(client, "alice", display_name="First")

    response = client.post(
        "/v1/users", json={"username": "ALICE", "display_name": "Second"}, headers=ADMIN
    )

    assert_error(response, 409, "conflict")
    assert client.get(f"/v1/users/{user['id']}", headers=ADMIN).json() == user
    assert client.get("/v1/me", headers=auth(token)).json()["display_name"] == "First"


INVALID_USERNAMES = ["", "   ", "-alice", ".alice", "al ice", "al/ice", "x" * 65, "名前", "alice!"]


def test_create_user_invalid_username_is_422_with_field(client: TestClient) -> None:
    for username in INVALID_USERNAMES:
        response = client.post("/v1/users", json={"username": username}, headers=ADMIN)

        error = assert_error(response, 422, "validation_error")
        assert [d["field"] for d in error["details"]] == ["username"], username


def test_create_user_longest_username_is_accepted(client: TestClient) -> None:
    user, _ = make_user(client, "a" * 64)

    assert user["username"] == "a" * 64


INVALID_USER_BODIES: list[tuple[dict[str, object], str]] = [
    ({}, "username"),
    ({"username": 5}, "username"),
    ({"username": "dave", "display_name": "x" * 201}, "display_name"),
    ({"username": "dave", "avatar_url": "x" * 2001}, "avatar_url"),
    ({"username": "dave", "metadata": []}, "metadata"),
    ({"username": "dave", "metadata": "x"}, "metadata"),
    ({"username": "dave", "is_admin": True}, "is_admin"),
]


def test_create_user_invalid_body_is_422_with_field_and_creates_nothing(
    client: TestClient,
) -> None:
    for body, field in INVALID_USER_BODIES:
        response = client.post("/v1/users", json=body, headers=ADMIN)

        error = assert_error(response, 422, "validation_error")
        assert field in [d["field"] for d in error["details"]], body
    # "dave" is still free: nothing was stored.
    make_user(client, "dave")


def test_create_user_with_user_token_is_forbidden_and_creates_nothing(
    client: TestClient, alice: Caller
) -> None:
    response = client.post("/v1/users", json={"username": "mallory"}, headers=alice.headers)

    assert_error(response, 403, "forbidden")
    make_user(client, "mallory")


def test_create_user_without_token_is_unauthorized(client: TestClient) -> None:
    response = client.post("/v1/users", json={"username": "mallory"})

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    make_user(client, "mallory")


def test_create_user_with_wrong_token_is_unauthorized(client: TestClient) -> None:
    response = client.post(
        "/v1/users", json={"username": "mallory"}, headers=auth("test-admin-token-not")
    )

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_get_user_as_admin_returns_user(client: TestClient, alice: Caller) -> None:
    response = client.get(f"/v1/users/{alice.id}", headers=ADMIN)

    assert response.status_code == 200
    assert response.json() == alice.user


def test_get_user_missing_is_404(client: TestClient) -> None:
    assert_error(client.get(f"/v1/users/{MISSING_ID}", headers=ADMIN), 404, "not_found")


def test_get_user_malformed_id_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/users/not-a-uuid", headers=ADMIN), 404, "not_found")


def test_update_user_as_admin_returns_the_user(client: TestClient, alice: Caller) -> None:
    response = client.patch(
        f"/v1/users/{alice.id}",
        json={"display_name": "Alice", "metadata": {"tier": "gold"}},
        headers=ADMIN,
    )

    assert response.status_code == 200, response.text
    user = response.json()
    assert user["display_name"] == "Alice"
    assert user["metadata"] == {"tier": "gold"}
    assert user["username"] == "alice"
    assert ts(user["updated_at"]) > ts(alice.user["updated_at"])
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == user


def test_update_user_missing_is_404(client: TestClient) -> None:
    response = client.patch(f"/v1/users/{MISSING_ID}", json={"display_name": "x"}, headers=ADMIN)

    assert_error(response, 404, "not_found")


def test_update_user_cannot_rename(client: TestClient, alice: Caller) -> None:
    response = client.patch(f"/v1/users/{alice.id}", json={"username": "eve"}, headers=ADMIN)

    assert_error(response, 422, "validation_error")
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == alice.user


def test_deactivate_user_stops_every_token_and_is_idempotent(
    client: TestClient, alice: Caller
) -> None:
    second = client.post("/v1/tokens", headers=alice.headers).json()["token"]

    response = client.post(f"/v1/users/{alice.id}/deactivate", headers=ADMIN)

    assert response.status_code == 200, response.text
    deactivated = response.json()
    assert deactivated["deactivated_at"] is not None
    for token in (alice.token, second):
        assert_error(client.get("/v1/me", headers=auth(token)), 401, "unauthorized")
        assert_error(client.get("/v1/conversations", headers=auth(token)), 401)
    again = client.post(f"/v1/users/{alice.id}/deactivate", headers=ADMIN)
    assert again.status_code == 200
    assert again.json()["deactivated_at"] == deactivated["deactivated_at"]
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == again.json()


def test_deactivate_user_leaves_other_users_working(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    client.post(f"/v1/users/{alice.id}/deactivate", headers=ADMIN)

    assert client.get("/v1/me", headers=bob.headers).json() == bob.user


def test_deactivate_user_missing_is_404(client: TestClient) -> None:
    assert_error(client.post(f"/v1/users/{MISSING_ID}/deactivate", headers=ADMIN), 404)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"display_name": "pwned"}),
        ("POST", "/deactivate", None),
    ],
)
def test_admin_user_routes_with_user_token_are_forbidden_and_change_nothing(
    client: TestClient, alice: Caller, bob: Caller, method: str, suffix: str, body: object
) -> None:
    response = client.request(
        method, f"/v1/users/{alice.id}{suffix}", json=body, headers=bob.headers
    )

    assert_error(response, 403, "forbidden")
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == alice.user
    assert client.get("/v1/me", headers=alice.headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("PATCH", ""), ("POST", "/deactivate")]
)
def test_admin_user_routes_without_token_are_unauthorized(
    client: TestClient, alice: Caller, method: str, suffix: str
) -> None:
    response = client.request(method, f"/v1/users/{alice.id}{suffix}", json={})

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == alice.user


def test_me_returns_the_caller(client: TestClient, alice: Caller, bob: Caller) -> None:
    assert client.get("/v1/me", headers=alice.headers).json() == alice.user
    assert client.get("/v1/me", headers=bob.headers).json() == bob.user


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_me_with_admin_token_is_forbidden(client: TestClient, method: str) -> None:
    response = client.request(method, "/v1/me", json={"display_name": "root"}, headers=ADMIN)

    assert_error(response, 403, "forbidden")


def test_update_me_changes_given_fields_and_keeps_the_rest(
    client: TestClient, alice: Caller
) -> None:
    client.patch(
        "/v1/me",
        json={"display_name": "Alice", "metadata": {"a": 1, "b": 2}},
        headers=alice.headers,
    )

    response = client.patch(
        "/v1/me",
        json={"avatar_url": "https://a.example/me.png", "metadata": {"c": 3}},
        headers=alice.headers,
    )

    assert response.status_code == 200, response.text
    me = response.json()
    assert me["display_name"] == "Alice"
    assert me["avatar_url"] == "https://a.example/me.png"
    assert me["metadata"] == {"c": 3}  # metadata is replaced whole
    assert client.get("/v1/me", headers=alice.headers).json() == me
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == me


def test_update_me_changes_only_the_caller(client: TestClient, alice: Caller, bob: Caller) -> None:
    client.patch("/v1/me", json={"display_name": "Bobby"}, headers=bob.headers)

    assert client.get("/v1/me", headers=alice.headers).json() == alice.user


def test_update_me_invalid_body_is_422_and_changes_nothing(
    client: TestClient, alice: Caller
) -> None:
    bodies: list[dict[str, object]] = [
        {"display_name": "x" * 201},
        {"display_name": 7},
        {"avatar_url": ["x"]},
        {"metadata": [1]},
        {"username": "eve"},
        {"deactivated_at": None},
    ]
    for body in bodies:
        response = client.patch("/v1/me", json=body, headers=alice.headers)

        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == next(iter(body))
    assert client.get("/v1/me", headers=alice.headers).json() == alice.user


def test_update_me_unicode_round_trips(client: TestClient, alice: Caller) -> None:
    profile = {"display_name": "Ælice 🦊 爱丽丝", "metadata": {"语言": "中文", "emoji": "👩‍💻"}}

    response = client.patch("/v1/me", json=profile, headers=alice.headers)

    assert response.status_code == 200
    me = client.get("/v1/me", headers=alice.headers).json()
    assert me["display_name"] == profile["display_name"]
    assert me["metadata"] == profile["metadata"]


@pytest.mark.parametrize("route", ["me", "admin"])
def test_update_user_null_clears_a_field_and_absent_keeps_it(
    client: TestClient, alice: Caller, route: str
) -> None:
    url, headers = ("/v1/me", alice.headers) if route == "me" else (f"/v1/users/{alice.id}", ADMIN)
    profile = {
        "display_name": "Alice",
        "avatar_url": "https://a.example/1.png",
        "metadata": {"a": 1},
    }
    assert client.patch(url, json=profile, headers=headers).status_code == 200

    response = client.patch(url, json={"display_name": None}, headers=headers)

    assert response.status_code == 200, response.text
    user = response.json()
    assert user["display_name"] is None
    assert user["avatar_url"] == "https://a.example/1.png" and user["metadata"] == {"a": 1}
    assert client.get(f"/v1/users/{alice.id}", headers=ADMIN).json() == user


def test_update_me_null_metadata_is_422_and_changes_nothing(
    client: TestClient, alice: Caller
) -> None:
    response = client.patch("/v1/me", json={"metadata": None}, headers=alice.headers)

    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "metadata"
    assert "{}" in error["message"]
    assert client.get("/v1/me", headers=alice.headers).json() == alice.user
