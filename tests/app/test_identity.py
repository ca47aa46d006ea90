"""Identity over HTTP (README "Identity"): password sign-in, access tokens (JWTs) accepted
wherever API tokens are, refresh rotation and reuse detection, sign-out, expiry by the app's
clock, the lockout, sign-up, setting passwords, and hostile tokens and bodies."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from app.identity import Identity
from dal.settings import Settings
from tests.app.conftest import ADMIN, Caller, auth, make_user

PASSWORD = "correct horse battery staple"
# Cheap Argon2 parameters: the tests hash hundreds of times.
FAST = {"app_argon2_time_cost": 1, "app_argon2_memory_kib": 64, "app_argon2_parallelism": 1}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


def identity(client: TestClient) -> Identity:
    state: Any = client.app_state  # the lifespan's state, as the routes see it
    found: Identity = state["identity"]
    return found


def set_password(client: TestClient, user_id: str, password: str = PASSWORD) -> None:
    response = client.put(
        f"/v1/users/{user_id}/password", json={"password": password}, headers=ADMIN
    )
    assert response.status_code == 204, response.text


def login(client: TestClient, username: str, password: str = PASSWORD, **kw: Any) -> Any:
    return client.post("/v1/auth/login", json={"username": username, "password": password}, **kw)


def signed_in(client: TestClient, username: str = "alice") -> dict[str, Any]:
    response = login(client, username)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def alice(client: TestClient) -> Caller:
    caller = Caller(*make_user(client, "alice"))
    set_password(client, caller.id)
    return caller


def test_login_gives_tokens_and_the_jwt_works_on_user_routes(
    client: TestClient, alice: Caller
) -> None:
    body = signed_in(client)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 86_400
    assert body["user"]["id"] == alice.id
    assert body["refresh_token"].startswith("mnemo_rt_")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "sid", "iat", "exp", "iss", "typ"}
    assert (claims["sub"], claims["iss"], claims["typ"]) == (alice.id, "mnemo", "access")
    me = client.get("/v1/me", headers=auth(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == alice.id
    made = client.post("/v1/conversations", json={}, headers=auth(body["access_token"]))
    assert made.status_code == 201, made.text
