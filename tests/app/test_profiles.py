"""Runtime profiles over HTTP (README "Runtime profiles"): a user's under /v1/profiles, the
system's under /v1/admin/profiles; secrets never answered (a masked hint), nor logged; another
user's profile is 404; a wrong encryption key is 503 encryption_key_mismatch."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from starlette.testclient import TestClient

from app import create_app
from dal.settings import Settings
from tests.app.conftest import ADMIN, MISSING_ID, Caller, Json, assert_error

API_KEY = "sk-http-0123456789abcdef-a1b2"
ACCESS_KEY = "rss-access-key-0123456789-wxyz"


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LLM_PROVIDER", "LLM_MODEL", "LLM_API_KEY", "RSSHUB_BASE_URL", "RSSHUB_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)


def llm(name: str = "main", **extra: object) -> Json:
    return {
        "kind": "llm",
        "name": name,
        "settings": {"provider": "openai", "model": "gpt-x"},
        "secrets": {"api_key": API_KEY},
        **extra,
    }


def test_a_users_profiles_from_create_to_delete(
    client: TestClient, alice: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    me = alice.headers
    response = client.post("/v1/profiles", json=llm(), headers=me)
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["location"] == f"/v1/profiles/{made['id']}"
    assert made["user_id"] == alice.id and made["active"] is False
    assert made["settings"] == {
        "provider": "openai",
        "base_url": None,
        "model": "gpt-x",
        "temperature": None,
        "max_tokens": None,
    }
    [secret] = made["secrets"]
    assert (secret["name"], secret["hint"]) == ("api_key", "sk-…a1b2") and secret["set_at"]
    one = f"/v1/profiles/{made['id']}"
    bodies = [response.text]
    assert client.post("/v1/profiles", json=llm(), headers=me).status_code == 409
    for method, path, body in [
        ("GET", one, None),
        ("PATCH", one, {"name": "renamed"}),
        ("POST", one + "/activate", None),
        ("GET", "/v1/profiles", None),
        ("GET", "/v1/profiles?kind=llm&limit=1", None),
        ("GET", "/v1/profiles/llm/effective", None),
    ]:
        response = client.request(method, path, json=body, headers=me)
        assert response.status_code == 200, (path, response.text)
        bodies.append(response.text)
    effective = response.json()
    assert effective["source"] == "user" and effective["profile_id"] == made["id"]
    assert effective["secrets"] == {"api_key": "sk-…a1b2"}
    listed = client.get("/v1/profiles?kind=llm", headers=me).json()
    assert [(p["name"], p["active"]) for p in listed["items"]] == [("renamed", True)]
    assert listed["has_more"] is False
    copy = client.post(one + "/duplicate", headers=me)
    assert copy.status_code == 201, copy.text
    assert (copy.json()["name"], copy.json()["active"]) == ("renamed (copy)", False)
    named = client.post(one + "/duplicate", json={"name": "second"}, headers=me)
    assert named.status_code == 201 and named.json()["name"] == "second"
    bodies += [copy.text, named.text]
    removed = client.patch(one, json={"secrets": {"api_key": None}}, headers=me)
    assert removed.status_code == 200 and removed.json()["secrets"] == []
    assert client.delete(one, headers=me).status_code == 204
    assert_error(client.get(one, headers=me), 404, "not_found")
    after = client.get("/v1/profiles/llm/effective", headers=me).json()
    assert (after["source"], after["profile_id"], after["secrets"]) == ("environment", None, {})
    for body in bodies:
        assert API_KEY not in body and "0123456789" not in body
    assert API_KEY not in caplog.text


def test_bad_profiles_are_refused_with_422(client: TestClient, alice: Caller) -> None:
    me = alice.headers
    for body in [
        llm(kind="nope"),
        llm(settings={"provider": "openai"}),
        llm(settings={"provider": "p", "model": "m", "temperature": 5}),
        llm(secrets={"access_key": "x"}),
        llm(secrets={"api_key": ""}),
        llm(name=""),
        {"kind": "rsshub", "name": "r", "settings": {"base_url": "not a url"}},
    ]:
        assert_error(client.post("/v1/profiles", json=body, headers=me), 422)
    made = client.post("/v1/profiles", json=llm(), headers=me).json()
    one = f"/v1/profiles/{made['id']}"
    assert_error(client.patch(one, json={}, headers=me), 422)
    assert_error(client.patch(one, json={"secrets": {"token": None}}, headers=me), 422)
    assert_error(client.get("/v1/profiles?kind=nope", headers=me), 422)
    assert_error(client.get("/v1/profiles/nope/effective", headers=me), 422)


def test_another_users_profile_is_404(client: TestClient, alice: Caller, bob: Caller) -> None:
    made = client.post("/v1/profiles", json=llm(), headers=alice.headers).json()
    one = f"/v1/profiles/{made['id']}"
    for method, path, body in [
        ("GET", one, None),
        ("PATCH", one, {"name": "x"}),
        ("POST", one + "/activate", None),
        ("POST", one + "/duplicate", None),
        ("DELETE", one, None),
        ("GET", f"/v1/profiles/{MISSING_ID}", None),
    ]:
        assert_error(client.request(method, path, json=body, headers=bob.headers), 404)
        assert_error(client.request(method, "/v1/admin" + path[3:], json=body, headers=ADMIN), 404)
    assert client.get("/v1/profiles", headers=bob.headers).json()["items"] == []
    assert client.get(one, headers=alice.headers).status_code == 200


def test_system_profiles_need_the_admin_token_and_back_every_user(
    client: TestClient, alice: Caller
) -> None:
    rss = {
        "kind": "rsshub",
        "name": "shared",
        "settings": {"base_url": "https://rsshub.example"},
        "secrets": {"access_key": ACCESS_KEY},
    }
    assert_error(client.post("/v1/admin/profiles", json=rss, headers=alice.headers), 403)
    assert_error(client.post("/v1/profiles", json=rss, headers=ADMIN), 403)
    response = client.post("/v1/admin/profiles", json=rss, headers=ADMIN)
    assert response.status_code == 201, response.text
    system = response.json()
    assert system["user_id"] is None
    assert response.headers["location"] == f"/v1/admin/profiles/{system['id']}"
    assert_error(client.get(f"/v1/profiles/{system['id']}", headers=alice.headers), 404)
    activated = client.post(f"/v1/admin/profiles/{system['id']}/activate", headers=ADMIN)
    assert activated.status_code == 200 and activated.json()["active"]
    for headers, path in [
        (alice.headers, "/v1/profiles/rsshub/effective"),
        (ADMIN, "/v1/admin/profiles/rsshub/effective"),
    ]:
        effective = client.get(path, headers=headers).json()
        assert effective["source"] == "system" and effective["profile_id"] == system["id"]
        assert effective["secrets"] == {"access_key": "rss…wxyz"}
        assert ACCESS_KEY not in str(effective)
    # The user's own active profile comes first.
    own = client.post(
        "/v1/profiles", json={**rss, "name": "mine", "secrets": {}}, headers=alice.headers
    ).json()
    client.post(f"/v1/profiles/{own['id']}/activate", headers=alice.headers)
    effective = client.get("/v1/profiles/rsshub/effective", headers=alice.headers).json()
    assert (effective["source"], effective["profile_id"]) == ("user", own["id"])
    listed = client.get("/v1/admin/profiles", headers=ADMIN).json()["items"]
    assert [p["id"] for p in listed] == [system["id"]]


def test_a_wrong_encryption_key_is_503_naming_the_setting(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    made = client.post("/v1/profiles", json=llm(), headers=alice.headers).json()
    client.post(f"/v1/profiles/{made['id']}/activate", headers=alice.headers)
    other = SecretStr(Fernet.generate_key().decode())
    with TestClient(
        create_app(settings.model_copy(update={"mnemo_encryption_key": other}))
    ) as wrong:
        response = wrong.get("/v1/profiles/llm/effective", headers=alice.headers)
        error = assert_error(response, 503, "encryption_key_mismatch")
        assert "MNEMO_ENCRYPTION_KEY" in error["message"]
        assert API_KEY not in response.text
        # Profiles still read: their hints need no key.
        assert wrong.get(f"/v1/profiles/{made['id']}", headers=alice.headers).status_code == 200
