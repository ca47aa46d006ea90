"""Tool-call integrity over HTTP: PATCH tool_integrity, 422 tool_call_unpaired in 'reject',
flagged messages listed in 'flag'."""

from __future__ import annotations

from tests.app.conftest import (
    Caller,
    TestClient,
    append,
    assert_error,
    make_conversation,
    messages_url,
)

CALL = {"type": "tool-weather", "toolCallId": "call-1", "state": "input-available", "input": {}}
RESULT = {"type": "tool-weather", "toolCallId": "call-1", "state": "output-available", "output": 1}


def chat(client: TestClient, alice: Caller, mode: str) -> str:
    conv = make_conversation(client, alice)
    patched = client.patch(
        f"/v1/conversations/{conv['id']}", json={"tool_integrity": mode}, headers=alice.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["tool_integrity"] == mode
    return str(conv["id"])


def test_reject_answers_422_naming_the_call(client: TestClient, alice: Caller) -> None:
    conv = chat(client, alice, "reject")
    append(client, alice, conv, role="assistant", parts=[CALL])
    body = {"role": "user", "parts": [{"type": "text", "text": "and?"}]}
    error = assert_error(
        client.post(messages_url(conv), json=body, headers=alice.headers),
        422,
        "tool_call_unpaired",
    )
    assert "call-1" in error["message"]
    append(client, alice, conv, role="tool", parts=[RESULT])
    assert append(client, alice, conv, "and?")["seq"] == 3


def test_flag_stores_and_lists_flagged_messages(client: TestClient, alice: Caller) -> None:
    conv = chat(client, alice, "flag")
    append(client, alice, conv, role="assistant", parts=[CALL])
    flagged = append(client, alice, conv, "and?")
    assert flagged["integrity"] == "unanswered_tool_call"
    stray = {**RESULT, "toolCallId": "nobody"}
    assert append(client, alice, conv, role="tool", parts=[stray])["integrity"] == (
        "unknown_tool_result"
    )
    page = client.get(messages_url(conv) + "/flagged", params={"limit": 1}, headers=alice.headers)
    assert page.status_code == 200, page.text
    assert [m["seq"] for m in page.json()["items"]] == [2] and page.json()["has_more"]
    rest = client.get(messages_url(conv) + "/flagged", params={"after": 2}, headers=alice.headers)
    assert [m["integrity"] for m in rest.json()["items"]] == ["unknown_tool_result"]


def test_flagged_list_of_a_stranger_is_404(client: TestClient, alice: Caller, bob: Caller) -> None:
    conv = chat(client, alice, "flag")
    assert_error(client.get(messages_url(conv) + "/flagged", headers=bob.headers), 404)
