"""Bearer-token authentication, the admin token, and the caller's tokens (/v1/tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    MISSING_ID,
    Caller,
    TestClient,
    assert_error,
    auth,
    count_rows,
    make_conversation,
    make_user,
    ts,
)
from tests.support import change_authentication

# Every route that needs a user's token (ids are well-formed; auth is checked first).
_CONV = f"/v1/conversations/{MISSING_ID}"
USER_ROUTES = [
    ("GET", "/v1/me"),
    ("PATCH", "/v1/me"),
    ("POST", "/v1/tokens"),
    ("GET", "/v1/tokens"),
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
    assert set(body) == {"id", "name", "created_at", "expires_at", "token"}
    assert body["name"] == "laptop" and body["expires_at"] is None
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


# --- token expiry and the cap on active tokens -------------------------------------------


def _expire_tokens(settings: Settings, user_id: str) -> None:
    """Move the expiry of the user's expiring tokens into the past (as if time had passed),
    as a script outside the app would, waiting until the app has applied it."""
    assert settings.database_url is not None
    change_authentication(
        settings.database_url,
        "UPDATE api_tokens SET created_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 hour'"
        " WHERE user_id = %s AND expires_at IS NOT NULL",
        (user_id,),
        user_id=user_id,
    )


def test_token_with_expires_in_works_until_it_expires_then_401(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    response = client.post(
        "/v1/tokens", json={"name": "ci", "expires_in": 3600}, headers=alice.headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    expires_at, created_at = ts(body["expires_at"]), ts(body["created_at"])
    assert (expires_at - created_at).total_seconds() == 3600
    assert client.get("/v1/me", headers=auth(body["token"])).status_code == 200

    _expire_tokens(settings, alice.id)

    for method, path in USER_ROUTES[:3]:
        response = client.request(method, path, json={}, headers=auth(body["token"]))
        error = assert_error(response, 401, "unauthorized")
        assert "expired" in error["message"]
    assert client.get("/v1/me", headers=alice.headers).status_code == 200  # never expires


@pytest.mark.parametrize("value", [0, -5, 1.5, 0.0, "3600", True, None, 10**40, 1e40])
def test_create_token_bad_expires_in_is_422_and_creates_nothing(
    client: TestClient, alice: Caller, settings: Settings, value: object
) -> None:
    response = client.post("/v1/tokens", json={"expires_in": value}, headers=alice.headers)

    if value is None:  # null: the same as leaving it out
        assert response.status_code == 201 and response.json()["expires_at"] is None
        return
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "expires_in"
    assert count_rows(settings, "SELECT count(*) FROM api_tokens") == 1  # alice's first


@pytest.mark.parametrize("value", [3600.0, 3.6e3])
def test_create_token_expires_in_written_as_a_whole_float_is_that_integer(
    client: TestClient, alice: Caller, value: float
) -> None:
    # JSON (and the JSON Schema integer of /openapi.json) make no difference between 3600 and
    # 3600.0: both are the same lifetime.
    response = client.post("/v1/tokens", json={"expires_in": value}, headers=alice.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (ts(body["expires_at"]) - ts(body["created_at"])).total_seconds() == 3600


@pytest.fixture
def strict_client(settings: Settings) -> Iterator[TestClient]:
    """The app with at most 3 active tokens per user and expiries up to an hour."""
    limits = {"app_max_tokens_per_user": 3, "app_max_token_expires_in": 3600}
    with TestClient(create_app(settings.model_copy(update=limits))) as client:
        yield client


def test_create_token_over_max_expires_in_is_422(strict_client: TestClient) -> None:
    _, token = make_user(strict_client, "carol")

    response = strict_client.post("/v1/tokens", json={"expires_in": 3601}, headers=auth(token))

    error = assert_error(response, 422, "invalid_input")
    assert "3600" in error["message"]
    response = strict_client.post("/v1/tokens", json={"expires_in": 3600}, headers=auth(token))
    assert response.status_code == 201, response.text
    response = strict_client.post(
        "/v1/users", json={"username": "dan", "token_expires_in": 3601}, headers=ADMIN
    )
    assert_error(response, 422, "invalid_input")


def test_create_token_over_max_per_user_is_409_until_one_is_revoked_or_expires(
    strict_client: TestClient, settings: Settings
) -> None:
    client = strict_client
    user, first = make_user(client, "carol")
    _, other = make_user(client, "dan")
    made = [client.post("/v1/tokens", headers=auth(first)).json() for _ in range(2)]

    response = client.post("/v1/tokens", headers=auth(first))

    error = assert_error(response, 409, "too_many_tokens")
    assert "3" in error["message"] and "revoke" in error["message"]
    assert client.post("/v1/tokens", headers=auth(other)).status_code == 201  # per user
    assert client.delete(f"/v1/tokens/{made[0]['id']}", headers=auth(first)).status_code == 204
    expiring = client.post("/v1/tokens", json={"expires_in": 60}, headers=auth(first))
    assert expiring.status_code == 201, expiring.text
    assert_error(client.post("/v1/tokens", headers=auth(first)), 409, "too_many_tokens")
    _expire_tokens(settings, user["id"])  # an expired token no longer counts
    assert client.post("/v1/tokens", headers=auth(first)).status_code == 201


def test_create_user_with_token_expires_in_shows_when_it_expires(
    client: TestClient, settings: Settings
) -> None:
    response = client.post(
        "/v1/users", json={"username": "erin", "token_expires_in": 600}, headers=ADMIN
    )

    assert response.status_code == 201, response.text
    body = response.json()
    expires_at = ts(body["token_expires_at"])
    assert (expires_at - ts(body["user"]["created_at"])).total_seconds() == 600
    assert client.get("/v1/me", headers=auth(body["token"])).status_code == 200
    _expire_tokens(settings, body["user"]["id"])
    assert_error(client.get("/v1/me", headers=auth(body["token"])), 401)

    plain = client.post("/v1/users", json={"username": "finn"}, headers=ADMIN).json()
    assert plain["token_expires_at"] is None


def test_list_tokens_shows_the_callers_active_tokens_newest_first_without_secrets(
    client: TestClient, alice: Caller, bob: Caller, settings: Settings
) -> None:
    laptop = client.post("/v1/tokens", json={"name": "laptop"}, headers=alice.headers).json()
    ci = client.post("/v1/tokens", json={"name": "ci", "expires_in": 60}, headers=alice.headers)
    gone = client.post("/v1/tokens", json={"name": "gone"}, headers=alice.headers).json()
    client.delete(f"/v1/tokens/{gone['id']}", headers=alice.headers)

    response = client.get("/v1/tokens", headers=alice.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_more"] is False
    items = body["items"]
    assert [t["name"] for t in items] == ["ci", "laptop", None]  # None: the first token
    assert items[0]["expires_at"] == ci.json()["expires_at"]
    assert {t["id"] for t in items} >= {laptop["id"], ci.json()["id"]}
    assert all(t["user_id"] == alice.id and t["revoked_at"] is None for t in items)
    assert "mnemo_" not in response.text  # no secret, nor its hash
    assert [
        t["user_id"] for t in client.get("/v1/tokens", headers=bob.headers).json()["items"]
    ] == [bob.id]
    _expire_tokens(settings, alice.id)
    names = [t["name"] for t in client.get("/v1/tokens", headers=alice.headers).json()["items"]]
    assert names == ["laptop", None]


def test_list_tokens_over_a_lowered_limit_says_has_more(
    strict_client: TestClient, client: TestClient
) -> None:
    _, token = make_user(client, "gina")  # the default limit: 100
    for _ in range(4):
        assert client.post("/v1/tokens", headers=auth(token)).status_code == 201

    page = strict_client.get("/v1/tokens", headers=auth(token)).json()  # the limit is 3 there

    assert len(page["items"]) == 3 and page["has_more"] is True
    assert len(client.get("/v1/tokens", headers=auth(token)).json()["items"]) == 5


def test_token_settings_are_bounded(settings: Settings) -> None:
    from pydantic import ValidationError

    for bad in (
        {"app_max_tokens_per_user": 0},
        {"app_max_tokens_per_user": 10_001},
        {"app_max_token_expires_in": 0},
        {"app_max_token_expires_in": 3_153_600_001},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)  # type: ignore[arg-type]
