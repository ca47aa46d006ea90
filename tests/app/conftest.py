"""Route tests: the real app on this test's own migrated database, through Starlette's
TestClient (used as a context manager, so the lifespan opens and closes the pool).

The client raises any exception a route lets through, so a test that provokes a 500 fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from app import create_app
from dal.settings import Settings

Json = dict[str, Any]
ADMIN_TOKEN = "test-admin-token"  # the admin token of the `settings` fixture
# A well-formed UUID that no row has.
MISSING_ID = "00000000-0000-7000-8000-000000000000"


def auth(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


ADMIN = auth(ADMIN_TOKEN)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@dataclass(frozen=True)
class Caller:
    """A user and one of their bearer tokens."""

    user: Json
    token: str

    @property
    def id(self) -> str:
        return str(self.user["id"])

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


def make_user(
    client: httpx.Client, username: str, *, admin_token: str = ADMIN_TOKEN, **fields: Any
) -> tuple[Json, str]:
    """Create a user with the admin token: (the user as JSON, their first bearer token). Any
    client: the TestClient, or an httpx.Client on a served app (with that app's admin token)."""
    response = client.post(
        "/v1/users", json={"username": username, **fields}, headers=auth(admin_token)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"], body["token"]


@pytest.fixture
def alice(client: TestClient) -> Caller:
    return Caller(*make_user(client, "alice"))


@pytest.fixture
def bob(client: TestClient) -> Caller:
    return Caller(*make_user(client, "bob"))


def make_conversation(client: TestClient, caller: Caller, **fields: Any) -> Json:
    response = client.post("/v1/conversations", json=fields, headers=caller.headers)
    assert response.status_code == 201, response.text
    conversation: Json = response.json()
    return conversation


def ts(value: str) -> datetime:
    """A timestamp of a response, to compare in time (the text drops zero microseconds)."""
    when = datetime.fromisoformat(value)
    assert when.tzinfo is not None, value
    return when


def text_part(text: str) -> Json:
    return {"type": "text", "text": text}


def messages_url(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}/messages"


def append(
    client: TestClient, caller: Caller, conversation_id: str, text: str = "hi", **fields: Any
) -> Json:
    """Append a message (role "user", one text part unless ``parts`` is given); 201 expected."""
    body = {"role": "user", "parts": [text_part(text)], **fields}
    response = client.post(messages_url(conversation_id), json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    message: Json = response.json()
    return message


def get_conversation(client: TestClient, caller: Caller, conversation_id: str) -> Json:
    response = client.get(f"/v1/conversations/{conversation_id}", headers=caller.headers)
    assert response.status_code == 200, response.text
    conversation: Json = response.json()
    return conversation


def list_conversations(client: TestClient, caller: Caller, **params: Any) -> Json:
    response = client.get("/v1/conversations", params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    page: Json = response.json()
    return page


def list_messages(client: TestClient, caller: Caller, conversation_id: str, **params: Any) -> Json:
    response = client.get(messages_url(conversation_id), params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    page: Json = response.json()
    return page


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> Json:
    """The response has this status and the JSON error shape (and this code); returns the
    ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: Json = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def count_rows(settings: Settings, sql: str, *params: Any) -> int:
    """A count straight from the test's database (to see what is really stored)."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])
