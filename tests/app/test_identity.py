"""Identity over HTTP (README "Identity"): password sign-in, access tokens (JWTs) accepted
wherever API tokens are, refresh rotation and reuse detection, sign-out, expiry by the app's
clock, the lockout, sign-up, setting passwords, and hostile tokens and bodies."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable, Iterator
from typing import Any, Literal

import argon2
import jwt
import psycopg
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from app import create_app
from app.identity import Identity
from dal.settings import Settings
from tests.app.conftest import ADMIN, Caller, assert_error, auth, make_user

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
    url = f"/v1/users/{user_id}/password"
    response = client.put(url, json={"password": password}, headers=ADMIN)
    assert response.status_code == 204, response.text


def login(client: TestClient, username: str = "alice", password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/login", json={"username": username, "password": password})


def signed_in(client: TestClient, username: str = "alice", password: str = PASSWORD) -> Any:
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/v1/auth/refresh", json={"refresh_token": token})


def me(client: TestClient, access_token: str) -> int:
    return client.get("/v1/me", headers=auth(access_token)).status_code


def spying(client: TestClient, each: Callable[[str], object]) -> argon2.PasswordHasher:
    """The app's hasher, calling ``each`` with the hash before each verification."""

    class Spy(argon2.PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            each(str(hash))
            return super().verify(hash, password)

    current = identity(client).passwords.hasher
    return Spy.from_parameters(current._parameters)


@pytest.fixture
def alice(client: TestClient) -> Caller:
    caller = Caller(*make_user(client, "alice"))
    set_password(client, caller.id)
    return caller


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


# --- sign-in and access tokens -------------------------------------------------------------


def test_login_gives_tokens_and_the_jwt_works_on_user_routes(
    client: TestClient, alice: Caller
) -> None:
    body = signed_in(client, " Alice ")  # usernames are case-insensitive, trimmed
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 86_400
    assert body["user"] == client.get("/v1/me", headers=alice.headers).json()
    assert body["refresh_token"].startswith("mnemo_rt_")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "sid", "iat", "exp", "iss", "typ"}
    assert (claims["sub"], claims["iss"], claims["typ"]) == (alice.id, "mnemo", "access")
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    assert client.get("/v1/me", headers=auth(body["access_token"])).json()["id"] == alice.id
    made = client.post("/v1/conversations", json={}, headers=auth(body["access_token"]))
    assert made.status_code == 201, made.text
    # The admin routes stay the admin token's.
    assert_error(client.get(f"/v1/users/{alice.id}", headers=auth(body["access_token"])), 403)


def test_login_wrong_password_and_unknown_user_answer_alike(
    client: TestClient, alice: Caller
) -> None:
    wrong = assert_error(login(client, "alice", "not the password"), 401, "invalid_credentials")
    unknown = assert_error(login(client, "nobody", PASSWORD), 401, "invalid_credentials")
    assert wrong == unknown
    bob = Caller(*make_user(client, "bob"))  # no password: cannot sign in
    assert assert_error(login(client, "bob", PASSWORD), 401) == wrong
    assert bob.id


def test_unknown_user_or_no_password_still_costs_one_verification(
    client: TestClient, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    monkeypatch.setattr(identity(client).passwords, "hasher", spying(client, verified.append))
    make_user(client, "bob")  # no password
    for username in ("nobody", "bob", "alice"):
        assert_error(login(client, username, "wrong password"), 401, "invalid_credentials")
    assert len(verified) == 3
    dummy = verified[0]
    assert verified[1] == dummy  # the same dummy hash, made at startup ...
    assert dummy.startswith("$argon2id$") and verified[2] != dummy  # ... with alice's parameters
    assert dummy.split("$")[3] == verified[2].split("$")[3]


def test_deactivated_user_cannot_sign_in_and_their_jwt_stops_at_once(
    client: TestClient, alice: Caller
) -> None:
    access = signed_in(client)["access_token"]
    assert me(client, access) == 200
    deactivated = client.post(f"/v1/users/{alice.id}/deactivate", headers=ADMIN)
    assert deactivated.status_code == 200
    assert me(client, access) == 401
    assert_error(login(client), 401, "invalid_credentials")


def test_rehash_when_the_parameters_changed(settings: Settings, alice: Caller) -> None:
    # alice's hash was made with FAST (time cost 1); the next process uses time cost 2.
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        before = conn.execute("SELECT hash FROM user_passwords").fetchone()
    assert before is not None and ",t=1," in before[0]
    stronger = settings.model_copy(update={"app_argon2_time_cost": 2})
    with TestClient(create_app(stronger)) as other:
        signed_in(other)
        with psycopg.connect(settings.database_url) as conn:
            after = conn.execute("SELECT hash FROM user_passwords").fetchone()
        assert after is not None and ",t=2," in after[0]
        signed_in(other)  # the new hash still verifies
    assert identity is not None


# --- refresh, reuse, logout --------------------------------------------------------------


def test_refresh_rotates_the_pair_and_the_old_refresh_token_is_used_up(
    client: TestClient, alice: Caller
) -> None:
    first = signed_in(client)
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["user"]["id"] == alice.id
    assert me(client, pair["access_token"]) == 200
    sid = jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]
    assert sid == jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    third = refresh(client, pair["refresh_token"])
    assert third.status_code == 200, third.text


def test_reusing_a_refresh_token_revokes_its_whole_session(
    client: TestClient, alice: Caller
) -> None:
    first = signed_in(client)
    other_session = signed_in(client)
    pair = refresh(client, first["refresh_token"]).json()
    assert me(client, pair["access_token"]) == 200
    assert_error(refresh(client, first["refresh_token"]), 401, "refresh_token_reused")
    # The thief's and the owner's tokens of that session all stop, at once.
    assert_error(refresh(client, pair["refresh_token"]), 401, "invalid_refresh_token")
    assert me(client, pair["access_token"]) == 401
    assert me(client, first["access_token"]) == 401
    # The user's other sessions go on.
    assert me(client, other_session["access_token"]) == 200
    assert refresh(client, other_session["refresh_token"]).status_code == 200


def test_unknown_refresh_token_is_401(client: TestClient, alice: Caller) -> None:
    for token in ("mnemo_rt_nope", "x", "é" * 100):
        assert_error(refresh(client, token), 401, "invalid_refresh_token")
    lone_surrogate = b'{"refresh_token": "\\ud800"}'
    response = client.post(
        "/v1/auth/refresh", content=lone_surrogate, headers={"Content-Type": "application/json"}
    )
    assert_error(response, response.status_code)
    assert response.status_code in (400, 401, 422)
    assert_error(refresh(client, "x" * 201), 422)


def test_logout_with_the_refresh_token_ends_the_session_at_once(
    client: TestClient, alice: Caller
) -> None:
    session = signed_in(client)
    assert me(client, session["access_token"]) == 200  # now cached
    out = client.post("/v1/auth/logout", json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204, out.text
    assert me(client, session["access_token"]) == 401
    assert_error(refresh(client, session["refresh_token"]), 401, "invalid_refresh_token")
    # Again, or with a token nobody issued: nothing to do.
    assert client.post("/v1/auth/logout", json={"refresh_token": "nope"}).status_code == 204


def test_logout_with_the_access_token_ends_its_session(client: TestClient, alice: Caller) -> None:
    session = signed_in(client)
    kept = signed_in(client)
    out = client.post("/v1/auth/logout", headers=auth(session["access_token"]))
    assert out.status_code == 204, out.text
    assert me(client, session["access_token"]) == 401
    assert_error(refresh(client, session["refresh_token"]), 401)
    assert me(client, kept["access_token"]) == 200


def test_logout_without_a_token_is_401_and_with_an_api_token_422(
    client: TestClient, alice: Caller
) -> None:
    assert_error(client.post("/v1/auth/logout"), 401)
    assert_error(client.post("/v1/auth/logout", headers=auth("garbage.jwt.here")), 401)
    assert_error(client.post("/v1/auth/logout", headers=alice.headers), 422)
    assert me(client, alice.token) == 200


# --- expiry by the app's clock -----------------------------------------------------------


def test_access_token_expires_then_refresh_gives_a_new_one(
    client: TestClient, alice: Caller
) -> None:
    session = signed_in(client)
    clock = identity(client).clock
    clock.advance(899)
    assert me(client, session["access_token"]) == 200
    clock.advance(1)
    response = client.get("/v1/me", headers=auth(session["access_token"]))
    assert_error(response, 401, "token_expired")
    pair = refresh(client, session["refresh_token"]).json()
    assert me(client, pair["access_token"]) == 200


def test_refresh_token_expires_unused_and_each_refresh_moves_its_end(
    client: TestClient, alice: Caller
) -> None:
    clock = identity(client).clock
    session = signed_in(client)
    clock.advance(30 * 86_400 - 10)
    pair = refresh(client, session["refresh_token"]).json()  # moved: 30 days from now
    assert pair["refresh_expires_in"] == 30 * 86_400
    clock.advance(30 * 86_400 - 10)
    later = refresh(client, pair["refresh_token"]).json()
    clock.advance(30 * 86_400)
    assert_error(refresh(client, later["refresh_token"]), 401, "invalid_refresh_token")


def test_access_token_never_outlives_its_session(client: TestClient, alice: Caller) -> None:
    clock = identity(client).clock
    session = signed_in(client)
    clock.advance(30 * 86_400 - 100)
    pair = refresh(client, session["refresh_token"]).json()
    assert pair["expires_in"] == 900
    # A session of 30 days ends with its last refresh + 30 days; its access token is at most
    # that (seen when the session has less left than an access token's lifetime).
    clock.advance(30 * 86_400 - 300)
    assert me(client, pair["access_token"]) == 401  # expired long ago (900 s)


# --- the lockout ----------------------------------------------------------------------------


def _lock(db: psycopg.Connection[Any]) -> Any:
    row = db.execute("SELECT failures, locked_until FROM login_failures").fetchone()
    return row


def test_lockout_at_its_boundaries(
    client: TestClient, alice: Caller, db: psycopg.Connection[Any]
) -> None:
    clock = identity(client).clock
    for _ in range(5):  # APP_LOGIN_FREE_FAILURES
        assert_error(login(client, "alice", "wrong"), 401, "invalid_credentials")
    assert _lock(db)[1] is None
    assert_error(login(client, "alice", "wrong"), 401, "invalid_credentials")  # the 6th: locks
    failures, locked_until = _lock(db)
    assert failures == 6 and locked_until is not None
    # Locked for 1 s: refused unchecked, even with the right password, and not extended.
    response = login(client)
    assert_error(response, 429, "login_locked")
    assert response.headers["Retry-After"] == "1"
    assert_error(login(client, "alice", "wrong"), 429, "login_locked")
    assert _lock(db) == (6, locked_until)
    clock.advance(1)
    # The lock ended by itself; the next failure locks for 2 s, then 4 s.
    assert_error(login(client, "alice", "wrong"), 401, "invalid_credentials")
    assert login(client).headers["Retry-After"] == "2"
    clock.advance(2)
    assert_error(login(client, "alice", "wrong"), 401)
    assert login(client).headers["Retry-After"] == "4"
    clock.advance(4)
    # A success resets the count.
    signed_in(client)
    assert _lock(db) is None
    for _ in range(5):
        assert_error(login(client, "alice", "wrong"), 401)
    assert signed_in(client)


def test_lock_caps_at_the_longest(client: TestClient, alice: Caller) -> None:
    clock = identity(client).clock
    for _ in range(5):
        assert_error(login(client, "alice", "wrong"), 401)
    for _ in range(20):
        assert_error(login(client, "alice", "wrong"), 401)
        clock.advance(900)
    assert_error(login(client, "alice", "wrong"), 401)
    assert login(client).headers["Retry-After"] == "900"


def test_lock_of_one_address_leaves_the_others(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    for _ in range(6):
        assert_error(login(client, "alice", "wrong"), 401)
    assert_error(login(client), 429, "login_locked")
    with TestClient(create_app(settings), client=("192.0.2.7", 40000)) as elsewhere:
        assert signed_in(elsewhere)["user"]["id"] == alice.id


def test_unknown_usernames_are_counted_and_locked_alike(
    client: TestClient, db: psycopg.Connection[Any]
) -> None:
    for _ in range(6):
        assert_error(login(client, "Nobody", "wrong"), 401, "invalid_credentials")
    assert_error(login(client, "nobody", "wrong"), 429, "login_locked")
    row = db.execute("SELECT username, client FROM login_failures").fetchone()
    assert row == ("nobody", "testclient")


def test_stale_counters_are_forgotten_and_deleted(
    client: TestClient, alice: Caller, db: psycopg.Connection[Any]
) -> None:
    clock = identity(client).clock
    for _ in range(4):
        assert_error(login(client, "alice", "wrong"), 401)
    clock.advance(86_400 + 1)  # APP_LOGIN_FAILURE_WINDOW_SECONDS
    assert_error(login(client, "alice", "wrong"), 401)
    assert _lock(db) == (1, None)  # started again
    clock.advance(86_400 + 1)
    assert_error(login(client, "someone-else", "wrong"), 401)  # prunes alice's
    rows = db.execute("SELECT username FROM login_failures").fetchall()
    assert rows == [("someone-else",)]


# --- sign-up and passwords ----------------------------------------------------------------


def test_signup_is_403_when_closed(client: TestClient, db: psycopg.Connection[Any]) -> None:
    body = {"username": "dave", "password": PASSWORD}
    assert_error(client.post("/v1/auth/signup", json=body), 403, "signup_closed")
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


@pytest.fixture
def open_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"app_signup": "open"}))) as client:
        yield client


def test_signup_when_open_creates_the_user_signed_in(open_client: TestClient) -> None:
    body = {"username": "Dave", "password": PASSWORD, "display_name": "Dave D."}
    response = open_client.post("/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    tokens = response.json()
    assert tokens["user"]["username"] == "dave"
    assert tokens["user"]["display_name"] == "Dave D."
    assert me(open_client, tokens["access_token"]) == 200
    assert signed_in(open_client, "dave")["user"]["id"] == tokens["user"]["id"]
    assert_error(open_client.post("/v1/auth/signup", json=body), 409)


@pytest.mark.parametrize(
    "body",
    [
        {"username": "erin", "password": "short"},
        {"username": "erin", "password": "x" * 1025},
        {"username": "-erin", "password": PASSWORD},
        {"username": "erin"},
        {"username": "erin", "password": PASSWORD, "admin": True},
    ],
)
def test_signup_bad_input_is_422_and_creates_nothing(
    open_client: TestClient, body: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    assert_error(open_client.post("/v1/auth/signup", json=body), 422)
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_admin_sets_a_password_and_signs_the_user_out(client: TestClient, alice: Caller) -> None:
    session = signed_in(client)
    set_password(client, alice.id, "a new password")
    assert me(client, session["access_token"]) == 401
    assert_error(refresh(client, session["refresh_token"]), 401)
    assert_error(login(client), 401)
    assert signed_in(client, "alice", "a new password")
    assert me(client, alice.token) == 200  # API tokens are not sessions


def test_admin_set_password_bounds_and_missing_user(client: TestClient, alice: Caller) -> None:
    url = f"/v1/users/{alice.id}/password"
    for password in ("seven..", "x" * 1025):
        assert_error(client.put(url, json={"password": password}, headers=ADMIN), 422)
    assert signed_in(client)  # unchanged
    missing = "/v1/users/00000000-0000-7000-8000-000000000000/password"
    assert_error(client.put(missing, json={"password": PASSWORD}, headers=ADMIN), 404)
    assert_error(client.put(url, json={"password": PASSWORD}, headers=alice.headers), 403)
    assert client.put(url, json={"password": "x" * 1024}, headers=ADMIN).status_code == 204


def test_user_changes_their_password_and_their_other_sessions_end(
    client: TestClient, alice: Caller
) -> None:
    mine, other = signed_in(client), signed_in(client)
    change = {"current_password": PASSWORD, "new_password": "another password"}
    response = client.post("/v1/auth/password", json=change, headers=auth(mine["access_token"]))
    assert response.status_code == 204, response.text
    assert me(client, mine["access_token"]) == 200
    assert refresh(client, mine["refresh_token"]).status_code == 200
    assert me(client, other["access_token"]) == 401
    assert_error(refresh(client, other["refresh_token"]), 401)
    assert signed_in(client, "alice", "another password")


def test_change_password_with_a_wrong_current_one_is_403_and_changes_nothing(
    client: TestClient, alice: Caller
) -> None:
    session = signed_in(client)
    change = {"current_password": "wrong one", "new_password": "another password"}
    response = client.post("/v1/auth/password", json=change, headers=alice.headers)
    assert_error(response, 403, "invalid_credentials")
    assert me(client, session["access_token"]) == 200
    assert signed_in(client)
    short = {"current_password": PASSWORD, "new_password": "short"}
    assert_error(client.post("/v1/auth/password", json=short, headers=alice.headers), 422)
    assert signed_in(client)


# --- hostile tokens and bodies -------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged(alice: Caller, claims: dict[str, Any]) -> list[str]:
    """Tokens that must not pass: unsigned, signed with another key, of another algorithm."""
    full = {"sub": alice.id, "iss": "mnemo", "typ": "access", **claims}
    other_key = "another key, long enough for HS512: sixty-four bytes or more, so!!"
    return [
        _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(full) + ".",
        jwt.encode(full, other_key, algorithm="HS256"),
        jwt.encode(full, other_key, algorithm="HS512"),
    ]


def test_forged_and_garbage_tokens_are_401_never_500(client: TestClient, alice: Caller) -> None:
    session = signed_in(client)
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    header, payload, signature = session["access_token"].split(".")
    tampered = dict(claims, sub="00000000-0000-7000-8000-000000000000")
    hostile = [
        *_forged(alice, claims),
        f"{header}.{_b64(tampered)}.{signature}",
        f"{header}.{payload}.{signature[:-2]}",
        "...",
        "a.b.c",
        "a.b",
        "eyJ.eyJ.",
        "x" * 10_000,
        header + "." * 5000,
        "ünïcödé.töken.hier",
        session["refresh_token"],
    ]
    for token in hostile:
        response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}".encode()})
        assert_error(response, 401, "unauthorized")
    raw = {"Authorization": b"Bearer \xff\xfe.\x80.\x81"}
    assert_error(client.get("/v1/me", headers=raw), 401)


def _signed(settings: Settings, claims: dict[str, Any]) -> str:
    from app.identity import jwt_key

    return jwt.encode(claims, jwt_key(settings), algorithm="HS256")


def test_tokens_signed_with_our_key_but_wrong_claims_are_401(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    session = signed_in(client)
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    for changed in (
        {"typ": "refresh"},
        {"iss": "elsewhere"},
        {"sub": "not-a-uuid"},
        {"sid": 12},
        {"exp": "tomorrow"},
        {"exp": 1.5e10},
        {"sub": "00000000-0000-7000-8000-000000000000"},  # not the session's user
    ):
        token = _signed(settings, {**claims, **changed})
        assert_error(client.get("/v1/me", headers=auth(token)), 401, "unauthorized")
    missing = {k: v for k, v in claims.items() if k != "sid"}
    assert_error(client.get("/v1/me", headers=auth(_signed(settings, missing))), 401)


def test_the_jwt_key_file_is_made_once_private(client: TestClient, settings: Settings) -> None:
    key = settings.data_dir / "jwt-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_text()
    with TestClient(create_app(settings)):
        pass
    assert key.read_text() == first and len(first.strip()) >= 32


def test_a_configured_jwt_secret_is_used(settings: Settings, alice: Caller) -> None:
    secret = "s" * 40
    configured = settings.model_copy(update={"app_jwt_secret": SecretStr(secret)})
    with TestClient(create_app(configured)) as other:
        token = signed_in(other)["access_token"]
        jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
        assert me(other, token) == 200


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.post(
            "/v1/auth/login",
            content=b'{"username": "\xff", "password": "x"}',
            headers={"Content-Type": "application/json"},
        ),
        lambda c: c.post(
            "/v1/auth/login", content=b"{", headers={"Content-Type": "application/json"}
        ),
        lambda c: c.post("/v1/auth/login", json={"username": "alice", "password": "x" * 2_000_000}),
        lambda c: c.post("/v1/auth/login", json={"username": "a" * 257, "password": PASSWORD}),
        lambda c: c.post("/v1/auth/login", json={"username": "alice", "password": ""}),
        lambda c: c.post("/v1/auth/login", json={"username": "alice", "password": "x" * 1025}),
        lambda c: c.post("/v1/auth/login", json={"username": "alice", "password": 12345678}),
        lambda c: c.post("/v1/auth/login", json=["alice", PASSWORD]),
        lambda c: c.post("/v1/auth/refresh", json={"refresh_token": None}),
        lambda c: c.post(
            "/v1/auth/login", content=b"username=alice", headers={"Content-Type": "text/plain"}
        ),
    ],
)
def test_bad_bodies_are_4xx_and_count_no_failure(
    client: TestClient,
    alice: Caller,
    db: psycopg.Connection[Any],
    send: Callable[[TestClient], Any],
) -> None:
    response = send(client)
    assert 400 <= response.status_code < 500, response.text
    assert_error(response, response.status_code)
    assert _lock(db) is None


def test_hashing_waits_a_bounded_time_for_a_slot_then_503_busy(
    settings: Settings, alice: Caller
) -> None:
    import threading

    tight = settings.model_copy(
        update={"app_max_concurrent_hashes": 1, "app_hash_wait_seconds": 0.05}
    )
    with TestClient(create_app(tight)) as other:
        holding, release = threading.Event(), threading.Event()

        def hold(_: str) -> None:
            holding.set()
            release.wait(10)

        identity(other).passwords.hasher = spying(other, hold)
        results: list[Any] = []
        first = threading.Thread(target=lambda: results.append(login(other)))
        first.start()
        try:
            assert holding.wait(10)  # the first sign-in holds the only slot
            busy = login(other)
            assert_error(busy, 503, "busy")
            assert busy.headers["Retry-After"]
        finally:
            release.set()
            first.join(10)
        assert results[0].status_code == 200
