"""GET /v1/search/messages and the filters of GET /v1/conversations: the HTTP mapping (the
gateways' results are tests/dal/test_search.py's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.app.conftest import (
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    list_conversations,
    make_conversation,
)

URL = "/v1/search/messages"


def search(client: TestClient, caller: Caller, **params: Any) -> Json:
    response = client.get(URL, params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    page: Json = response.json()
    return page


def test_search_messages_answers_hits_with_message_title_snippet_and_rank(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    chat = make_conversation(client, alice, title="Trip <planning>")
    made = append(client, alice, chat["id"], "Three days in <b>Kyoto</b>: 京都会议")
    append(client, bob, make_conversation(client, bob)["id"], "Kyoto for bob")

    page = search(client, alice, q="kyoto 会议")
    assert page["next_cursor"] is None
    [hit] = page["items"]
    assert set(hit) == {"conversation_id", "conversation_title", "message", "snippet", "rank"}
    assert hit["conversation_id"] == chat["id"]
    assert hit["conversation_title"] == "Trip <planning>"
    assert hit["message"]["id"] == made["id"] and hit["message"]["parts"] == made["parts"]
    assert hit["rank"] > 0
    assert hit["snippet"] == (
        "Three days in &lt;b&gt;<mark>Kyoto</mark>&lt;/b&gt;: 京都<mark>会议</mark>"
    )
    assert search(client, bob, q="会议")["items"] == []


def test_search_messages_filters_and_pages(client: TestClient, alice: Caller) -> None:
    chat = make_conversation(client, alice)
    tool = {"type": "tool-pay", "toolCallId": "1", "state": "output-error", "errorText": "no"}
    for i in range(3):
        append(client, alice, chat["id"], f"order {i}", parts=[tool], metadata={"i": i})
    append(client, alice, chat["id"], "no tool here", role="assistant")

    assert len(search(client, alice, tool="pay")["items"]) == 3
    assert len(search(client, alice, tool="pay", tool_state="output-error")["items"]) == 3
    assert len(search(client, alice, role="assistant")["items"]) == 1
    assert len(search(client, alice, part_type="tool", conversation_id=chat["id"])["items"]) == 3
    assert len(search(client, alice, metadata=json.dumps({"i": 1}))["items"]) == 1
    assert (
        len(
            search(client, alice, since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00+02:00")[
                "items"
            ]
        )
        == 4
    )
    assert search(client, alice, until="2000-01-01T00:00:00Z")["items"] == []

    seen: list[str] = []
    params: dict[str, Any] = {"tool": "pay", "limit": 2}
    while True:
        page = search(client, alice, **params)
        seen += [hit["message"]["id"] for hit in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 3


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"q": "-only"}, "q"),
        ({"q": "x" * 501}, "q"),
        ({"conversation_id": "nope"}, "conversation_id"),
        ({"role": "robot"}, "role"),
        ({"tool": "x" * 201}, "tool"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "until"),  # no time zone
        ({"until": ""}, "until"),
        ({"since": "1700000000"}, "since"),
        ({"since": "2026-13-01T00:00:00Z"}, "since"),
        ({"conversation_id": "0" * 32}, "conversation_id"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"metadata": "[1]"}, "metadata"),
        ({"metadata": "{"}, "metadata"),
        ({"cursor": "abc"}, "cursor"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_search_messages_bad_input_is_422_naming_the_parameter(
    client: TestClient, alice: Caller, params: dict[str, str], names: str
) -> None:
    error = assert_error(client.get(URL, params=params, headers=alice.headers), 422)
    assert names in error["message"], error


def test_search_messages_needs_a_users_token(client: TestClient) -> None:
    assert_error(client.get(URL, params={"q": "x"}), 401)


def test_list_conversations_filters_by_q_tag_and_metadata(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    billing = make_conversation(
        client, alice, title="Billing", tags=["billing", "urgent"], metadata={"plan": "pro"}
    )
    refund = make_conversation(client, alice, title="Refund", tags=["billing"])
    append(client, alice, refund["id"], "the invoice was wrong")
    make_conversation(client, bob, title="Billing", tags=["billing"])

    def ids(**params: Any) -> list[str]:
        return [c["id"] for c in list_conversations(client, alice, **params)["items"]]

    assert ids(q="invoice") == [refund["id"]]
    assert ids(q="billing OR invoice") == [refund["id"], billing["id"]]
    assert ids(tag="billing") == [refund["id"], billing["id"]]
    assert ids(tag=["billing", "urgent"], tags_mode="all") == [billing["id"]]
    assert ids(tag=["urgent", "nope"]) == [billing["id"]]
    assert ids(metadata=json.dumps({"plan": "pro"})) == [billing["id"]]
    assert ids(tag="billing", limit=1) == [refund["id"]]
    page = list_conversations(client, alice, tag="billing", limit=1)
    assert ids(tag="billing", limit=1, cursor=page["next_cursor"]) == [billing["id"]]

    for params in ({"q": "-x"}, {"tags_mode": "some"}, {"metadata": "1"}, {"tag": "x" * 101}):
        error = assert_error(
            client.get("/v1/conversations", params=params, headers=alice.headers), 422
        )
        assert next(iter(params)) in error["message"], error
