"""Bearer-token authentication, the admin token, and the caller's tokens (/v1/tokens)."""

from __future__ import annotations

from uuid import UUID

import pytest

from tests.app.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    MISSING_ID,
    Caller,
    TestClient,
    assert_error,
    auth,
    make_conversation,
)

# Every route that needs a user's token (ids are well-formed; auth is checked first).
_CONV = f"/v1/conversations/{MISSING_ID}"
USER_ROUTES = [
    ("GET", "/v1/me"),
    ("PATCH", "/v1/me"),
    ("POST", "/v1/tokens"),
    ("DELETE", f"/v1/tokens/{MISSING_ID}"),
    ("POST", "/v1/conversations"),
    ("GET", "/v1/conversations"),
    ("GET", _CONV),
    ("PATCH", _CONV),
    ("DELETE", _CONV),
    ("POST", f"{_CONV}/messages"),
    ("GET", f"{_CONV}/messages"),
    ("GET", f"{_CONV}/messages/{MISSING_ID}"),
    ("PATCH", f"{_CONV}/messages/{MISSING_ID}"),
    ("DELETE", f"{_CONV}/messages/{MISSING_ID}"),
]
BAD_AUTHORIZATIONS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer    ",
    "Basic dXNlcjpwYXNz",
    "Token mnemo_abc",
    "Bearer mnemo_not-a-real-token",
    "Bearer test-admin-token-x",  # a prefix match of the admin token is no match
    "mnemo_abc",
]


def _headers(authorization: str | None) -> dict[str, str]:
    return {} if authorization is None else {"Authorization": authorization}


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["pending_migrations"] == []
    assert body["server_version"] >= 150000


@pytest.mark.parametrize(("method", "path"), USER_ROUTES)
def test_user_route_without_user_token_is_401_and_with_admin_token_403(
    client: TestClient, method: str, path: str
) -> None:
    for authorization in BAD_AUTHORIZATIONS:
        response = client.request(method, path, json={}, headers=_headers(authorization))

        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer", authorization

    # The admin token acts for no user.
    assert_error(client.request(method, path, json={}, headers=ADMIN), 403, "forbidden")


def test_admin_route_with_invalid_token_is_401(client: TestClient) -> None:
    for authorization in BAD_AUTHORIZATIONS:
        response = client.post(
            "/v1/users", json={"username": "eve"}, headers=_headers(authorization)
        )

        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_bearer_scheme_is_case_insensitive(client: TestClient, alice: Caller) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = client.get("/v1/me", headers={"Authorization": f"{scheme} {alice.token}"})
        assert response.status_code == 200, scheme
    admin = client.post(
        "/v1/users", json={"username": "eve"}, headers={"Authorization": f"bearer {ADMIN_TOKEN}"}
    )
    assert admin.status_code == 201


def test_token_with_non_ascii_bytes_is_401(client: TestClient) -> None:
    response = client.get("/v1/me", headers={"Authorization": b"Bearer \xff\xfe\x00"})

    assert_error(response, 401, "unauthorized")


def test_create_token_returns_a_new_working_token(client: TestClient, alice: Caller) -> None:
    response = client.post("/v1/tokens", json={"name": "laptop"}, headers=alice.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "created_at", "token"}
    assert body["name"] == "laptop"
    UUID(body["id"])
    assert body["token"] != alice.token
    assert client.get("/v1/me", headers=auth(body["token"])).json() == alice.user
    assert client.get("/v1/me", headers=alice.headers).json() == alice.user


def test_create_token_without_body_has_no_name(client: TestClient, alice: Caller) -> None:
    response = client.post("/v1/tokens", headers=alice.headers)

    assert response.status_code == 201, response.text
    assert response.json()["name"] is None
    assert client.get("/v1/me", headers=auth(response.json()["token"])).status_code == 200


def test_create_token_invalid_body_is_rejected(client: TestClient, alice: Caller) -> None:
    too_long = client.post("/v1/tokens", json={"name": "x" * 201}, headers=alice.headers)
    error = assert_error(too_long, 422, "validation_error")
    assert error["details"][0]["field"] == "name"
    assert_error(client.post("/v1/tokens", json={"name": 1}, headers=alice.headers), 422)
    assert_error(
        client.post("/v1/tokens", json={"user_id": MISSING_ID}, headers=alice.headers), 422
    )
    not_json = client.post(
        "/v1/tokens", content=b"name=x", headers={**alice.headers, "content-type": "text/plain"}
    )
    assert_error(not_json, 415, "unsupported_media_type")


def test_revoke_token_makes_it_401_and_keeps_the_others(client: TestClient, alice: Caller) -> None:
    extra = client.post("/v1/tokens", json={"name": "ci"}, headers=alice.headers).json()

    response = client.delete(f"/v1/tokens/{extra['id']}", headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get("/v1/me", headers=auth(extra["token"])), 401, "unauthorized")
    assert client.get("/v1/me", headers=alice.headers).status_code == 200


def test_revoke_token_twice_is_404(client: TestClient, alice: Caller) -> None:
    extra = client.post("/v1/tokens", headers=alice.headers).json()
    client.delete(f"/v1/tokens/{extra['id']}", headers=alice.headers)

    assert_error(client.delete(f"/v1/tokens/{extra['id']}", headers=alice.headers), 404)


def test_revoke_token_used_for_the_request_itself_logs_out(
    client: TestClient, alice: Caller
) -> None:
    spare = client.post("/v1/tokens", headers=alice.headers).json()

    response = client.delete(f"/v1/tokens/{spare['id']}", headers=auth(spare["token"]))

    assert response.status_code == 204
    assert_error(client.get("/v1/me", headers=auth(spare["token"])), 401)


def test_revoke_token_missing_or_malformed_is_404(client: TestClient, alice: Caller) -> None:
    assert_error(client.delete(f"/v1/tokens/{MISSING_ID}", headers=alice.headers), 404)
    assert_error(client.delete("/v1/tokens/abc", headers=alice.headers), 404)


def test_revoke_token_of_another_user_is_404_and_it_keeps_working(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    alices = client.post("/v1/tokens", json={"name": "phone"}, headers=alice.headers).json()

    response = client.delete(f"/v1/tokens/{alices['id']}", headers=bob.headers)

    assert_error(response, 404, "not_found")
    assert client.get("/v1/me", headers=auth(alices["token"])).json() == alice.user


def test_revoked_token_cannot_reach_data(client: TestClient, alice: Caller) -> None:
    spare = client.post("/v1/tokens", headers=alice.headers).json()
    conversation = make_conversation(client, alice)
    client.delete(f"/v1/tokens/{spare['id']}", headers=alice.headers)

    response = client.get(f"/v1/conversations/{conversation['id']}", headers=auth(spare["token"]))

    assert_error(response, 401, "unauthorized")
