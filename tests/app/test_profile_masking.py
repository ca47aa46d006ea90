"""A profile's secret never leaves Mnemo in clear: not in a response's body or headers, an error
message (validation errors that echo input included), nor a log line of any logger at DEBUG,
through a real uvicorn, for every operation on user and system profiles, a wrong key's 503
and refused input alike."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from dal.settings import Settings
from tests.app.conftest import ADMIN, ADMIN_TOKEN, Json, auth, make_user
from tests.app.serving import serving
from tests.app.test_profiles import no_environment  # noqa: F401 (an autouse fixture: no LLM_*)

# Distinctive, and long enough that its hint shows a little of it ("sk-…Z9z9"): the middle
# is what must never appear.
SECRET = "sk-MASKED-7f3c1e9a5b2d4068-Z9z9"
MIDDLE = "7f3c1e9a5b2d4068"
ANOTHER = "sk-MASKED-0a1b2c3d4e5f6789-Y8y8"


def llm(name: str, **extra: Any) -> Json:
    return {
        "kind": "llm",
        "name": name,
        "settings": {"provider": "openai", "model": "gpt-x"},
        "secrets": {"api_key": SECRET},
        **extra,
    }


class Seen:
    """Every response's status line, headers and body, for one scan at the end."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, response: httpx.Response, status: int) -> Json:
        self.texts.append(f"{response.status_code} {response.headers!r} {response.text}")
        assert response.status_code == status, response.text
        body: Json = response.json() if response.content else {}
        return body


def assert_nowhere(texts: list[str]) -> None:
    for text in texts:
        for secret in (SECRET, MIDDLE, ANOTHER, "0a1b2c3d4e5f6789"):
            assert secret not in text, text[:500]


def test_no_secret_in_any_response_header_error_or_log_line(
    settings: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the server's (uvicorn's) included
    seen = Seen()
    with serving(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        user, token = make_user(client, "masked", admin_token=ADMIN_TOKEN)
        for prefix, headers in (("/v1/profiles", auth(token)), ("/v1/admin/profiles", ADMIN)):
            made = seen(client.post(prefix, json=llm("main"), headers=headers), 201)
            one = f"{prefix}/{made['id']}"
            seen(client.get(one, headers=headers), 200)
            seen(client.get(prefix, headers=headers), 200)
            patch = {"secrets": {"api_key": ANOTHER}, "name": "renamed"}
            seen(client.patch(one, json=patch, headers=headers), 200)
            seen(client.post(one + "/activate", headers=headers), 200)
            copy = seen(client.post(one + "/duplicate", headers=headers), 201)
            seen(client.get(f"{prefix}/llm/effective", headers=headers), 200)
            # Refused input around a secret: the value is never echoed back.
            for body in (
                llm("bad", settings={"provider": "openai", "model": "m", "temperature": 5}),
                llm("bad", settings={"provider": "openai", "model": "m", "extra": SECRET}),
                llm("bad", secrets={"token": SECRET}),
                llm("bad", secrets={"api_key": SECRET + "\u0000"}),
                llm("bad", secrets={"api_key": SECRET * 300}),
                llm("bad", secrets={"api_key": [SECRET]}),
                llm("bad", secrets=SECRET),
                {**llm("bad"), "unknown": SECRET},
                llm("renamed"),  # 409: the name is taken
            ):
                response = client.post(prefix, json=body, headers=headers)
                seen(response, 409 if body["name"] == "renamed" else 422)
            for patch in (
                {"secrets": {"token": SECRET}},
                {"secrets": {"api_key": SECRET + "\u0000"}},
                {"secrets": {"api_key": 7}, "name": SECRET},
                {"settings": {"provider": SECRET, "model": "m", "temperature": "hot"}},
            ):
                seen(client.patch(one, json=patch, headers=headers), 422)
            # Malformed JSON holding a secret.
            raw = b'{"kind": "llm", "secrets": {"api_key": "' + SECRET.encode() + b'"'
            response = client.post(
                prefix, content=raw, headers={**headers, "Content-Type": "application/json"}
            )
            seen(response, 400 if response.status_code == 400 else 422)
            seen(client.delete(f"{prefix}/{copy['id']}", headers=headers), 204)
        effective = seen(client.get("/v1/profiles/llm/effective", headers=auth(token)), 200)
        assert effective["secrets"] == {"api_key": "sk-…Y8y8"} and user["id"]
    # The same database read with another key: 503, naming the setting, not the secret.
    other = SecretStr(Fernet.generate_key().decode())
    wrong = settings.model_copy(update={"mnemo_encryption_key": other})
    with serving(wrong) as base, httpx.Client(base_url=base, timeout=30) as client:
        for path, headers in (
            ("/v1/profiles/llm/effective", auth(token)),
            ("/v1/admin/profiles/llm/effective", ADMIN),
        ):
            error = seen(client.get(path, headers=headers), 503)["error"]
            assert error["code"] == "encryption_key_mismatch"
    assert any("sk-…Z9z9" in text for text in seen.texts)  # the scan reads the bodies
    assert_nowhere(seen.texts)
    assert len(caplog.records) > 10  # the requests were logged, at DEBUG too
    assert_nowhere([caplog.text, *(str(r.__dict__) for r in caplog.records)])
    out, err = capfd.readouterr()
    assert_nowhere([out, err])
