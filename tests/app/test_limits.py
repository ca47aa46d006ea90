"""Message limits over HTTP: 429 limit_reached naming the limit and its setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    Caller,
    TestClient,
    append,
    assert_error,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    small = settings.model_copy(
        update={"app_max_messages_per_conversation": 2, "app_max_messages_per_user": 3}
    )
    with TestClient(create_app(small)) as client:
        yield client


def test_over_a_limit_is_429_naming_it_and_a_retry_is_still_answered(
    limited: TestClient,
) -> None:
    alice = Caller(*make_user(limited, "alice"))
    conv = make_conversation(limited, alice)
    first = append(limited, alice, conv["id"], id="01a24bd9-0000-7000-8000-000000000001")
    append(limited, alice, conv["id"])
    body = {"role": "user", "parts": [text_part("one more")]}
    refused = limited.post(messages_url(conv["id"]), json=body, headers=alice.headers)
    error = assert_error(refused, 429, "limit_reached")
    assert "APP_MAX_MESSAGES_PER_CONVERSATION" in error["message"]
    retry = limited.post(
        messages_url(conv["id"]),
        json={"id": first["id"], "role": "user", "parts": [text_part("hi")]},
        headers=alice.headers,
    )
    assert retry.status_code == 200, retry.text
    other = make_conversation(limited, alice)
    append(limited, alice, other["id"])
    error = assert_error(
        limited.post(messages_url(other["id"]), json=body, headers=alice.headers),
        429,
        "limit_reached",
    )
    assert "APP_MAX_MESSAGES_PER_USER" in error["message"] and "3 messages" in error["message"]


def test_the_openapi_document_lists_429_on_append(limited: TestClient) -> None:
    document = limited.get("/openapi.json").json()
    post = document["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    assert "429" in post["responses"]
