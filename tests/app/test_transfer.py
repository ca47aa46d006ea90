"""Export and import over HTTP: statuses, media types, the documents' bytes, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from app import cli, create_app
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    count_rows,
    get_conversation,
    list_conversations,
    list_messages,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)
from tests.app.test_messages import ALL_PARTS

IMPORT = "/v1/conversations/import"


def export_url(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}/export"


def seeded(client: TestClient, caller: Caller, title: str = "chat") -> Json:
    conv = make_conversation(client, caller, title=title, tags=["t"], metadata={"a": [1, 0.5]})
    append(client, caller, conv["id"], "京都で会議 😀")
    append(client, caller, conv["id"], parts=ALL_PARTS, role="assistant", metadata={"m": 1e300})
    append(client, caller, conv["id"], parts=[], status="streaming", role="assistant")
    return conv


def post_import(
    client: TestClient,
    caller: Caller,
    body: bytes,
    media_type: str = "application/json",
    **params: str,
) -> object:
    return client.post(
        IMPORT,
        content=body,
        params=params,
        headers={**caller.headers, "Content-Type": media_type},
    )


def plain(document: Json) -> Json:
    """A document without its ids and times."""
    gone = {"id", "user_id", "conversation_id", "created_at", "updated_at", "last_message_at"}
    gone |= {"session_no"}  # chat sessions are activity: imported messages join none
    gone |= {"sender_id"}  # the importer's
    return {
        "conversation": {k: v for k, v in document["conversation"].items() if k not in gone},
        "messages": [{k: v for k, v in m.items() if k not in gone} for m in document["messages"]],
    }


def test_export_is_the_conversation_then_its_messages_as_the_api_writes_them(
    client: TestClient, alice: Caller
) -> None:
    conv = seeded(client, alice)
    response = client.get(export_url(conv["id"]), headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert conv["id"] in response.headers["content-disposition"]
    document = response.json()
    assert document["conversation"] == get_conversation(client, alice, conv["id"])
    assert document["messages"] == list_messages(client, alice, conv["id"])["items"]
    # Byte for byte as GET writes each message.
    for message in document["messages"]:
        one = client.get(f"{messages_url(conv['id'])}/{message['id']}", headers=alice.headers)
        assert one.content in response.content


def test_export_of_another_users_or_a_missing_conversation_is_404(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    conv = seeded(client, alice)
    assert_error(client.get(export_url(conv["id"]), headers=bob.headers), 404)
    assert_error(client.get(export_url(MISSING_ID), headers=alice.headers), 404)
    head = client.head(export_url(conv["id"]), headers=alice.headers)
    assert head.status_code == 200 and head.content == b""


def test_export_all_is_ndjson_of_the_callers_conversations_only(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    for title in ("one", "two"):
        seeded(client, alice, title)
    seeded(client, bob, "bob's")
    response = client.get("/v1/export", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.content.splitlines()
    assert [json.loads(line)["conversation"]["title"] for line in lines] == ["two", "one"]
    carol = Caller(*make_user(client, "carol"))
    assert client.get("/v1/export", headers=carol.headers).content == b""


def test_export_import_export_over_http_is_identical_apart_from_ids_and_times(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    conv = seeded(client, alice)
    exported = client.get(export_url(conv["id"]), headers=alice.headers)
    response = post_import(client, bob, exported.content)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["conversation_count"] == 1 and result["message_count"] == 3
    copy = result["conversations"][0]
    assert copy["id"] != conv["id"] and copy["title"] == "chat" and copy["message_count"] == 3
    again = client.get(export_url(copy["id"]), headers=bob.headers).json()
    assert plain(again) == plain(exported.json())

    # All of a user's conversations, as NDJSON, into another user's account.
    everything = client.get("/v1/export", headers=alice.headers).content
    carol = Caller(*make_user(client, "carol"))
    response = post_import(client, carol, everything, "application/x-ndjson")
    assert response.status_code == 201, response.text
    assert response.json()["message_count"] == 3


def test_import_keeping_ids_of_an_existing_conversation_is_409_and_writes_nothing(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    conv = seeded(client, alice)
    exported = client.get(export_url(conv["id"]), headers=alice.headers).content
    before = count_rows(settings, "SELECT count(*) FROM messages")
    assert_error(post_import(client, bob, exported, keep_ids="true"), 409)
    assert count_rows(settings, "SELECT count(*) FROM messages") == before
    client.delete(f"/v1/conversations/{conv['id']}", headers=alice.headers)
    response = post_import(client, alice, exported, keep_ids="true")
    assert response.status_code == 201 and response.json()["conversations"][0]["id"] == conv["id"]
    assert_error(post_import(client, alice, exported, keep_ids="maybe"), 422)


def test_import_of_an_ai_sdk_ui_message_array(client: TestClient, alice: Caller) -> None:
    ui = [
        {"id": "m1", "role": "user", "parts": [text_part("你好 👋")]},
        {"id": "m2", "role": "assistant", "parts": ALL_PARTS, "metadata": {"model": "x"}},
    ]
    response = post_import(client, alice, orjson.dumps(ui))
    assert response.status_code == 201, response.text
    conv_id = response.json()["conversations"][0]["id"]
    items = list_messages(client, alice, conv_id)["items"]
    assert [m["parts"] for m in items] == [ui[0]["parts"], ALL_PARTS]
    assert items[1]["metadata"] == {"model": "x", "uiMessageId": "m2"}
    assert get_conversation(client, alice, conv_id)["message_count"] == 2


def test_bad_imports_say_what_and_where_and_write_nothing(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    good = {"role": "user", "parts": [text_part("ok")]}
    bad_part = {"role": "user", "parts": [{"type": "tool-x", "state": "input-available"}]}
    cases = [
        (orjson.dumps({"messages": [good, good, bad_part]}), 422, "messages.2.parts.0"),
        (b'{"messages": []}\n{"messages": [1]}', 422, "line 2"),
        (b'{"messages": [', 400, "not valid JSON"),
        (b"", 422, "empty"),
        (b'"text"', 422, "conversation document"),
    ]
    for body, status, where in cases:
        error = assert_error(post_import(client, alice, body), status)
        assert where in error["message"], error
    assert_error(post_import(client, alice, b"{}", "text/plain"), 415)
    too_large = {"role": "user", "parts": [text_part("x" * 100)] * 2000}
    error = assert_error(
        post_import(client, alice, orjson.dumps({"messages": [good, too_large]})),
        413,
        "message_too_large",
    )
    assert "messages.1" in error["message"]
    assert count_rows(settings, "SELECT count(*) FROM conversations") == 0


def test_import_body_over_app_max_import_bytes_is_413(settings: Settings, tmp_path: Path) -> None:
    small = settings.model_copy(update={"app_max_import_bytes": 100})
    with TestClient(create_app(small)) as client:
        caller = Caller(*make_user(client, "alice"))
        body = orjson.dumps({"conversation": {"title": "x" * 200}})
        assert_error(post_import(client, caller, body), 413, "body_too_large")
        assert post_import(client, caller, b'{"messages": []}').status_code == 201


def _chat(messages: int) -> bytes:
    """An AI SDK UIMessage[] of ``messages`` messages, English and Chinese."""
    return orjson.dumps(
        [
            {
                "id": f"m{n}",
                "role": "user" if n % 2 == 0 else "assistant",
                "parts": [{"type": "text", "text": f"message {n}: 京都の会議, order {n} " * 8}],
            }
            for n in range(messages)
        ]
    )


@pytest.mark.parametrize("import_timeout", [0.05, 600.0], ids=["too-short", "default"])
def test_an_import_runs_under_app_import_timeout_not_db_query_timeout(
    settings: Settings, import_timeout: float
) -> None:
    # A statement_timeout of 50 ms: an ordinary statement fits, an import of 3,000 messages
    # (each indexed for search) does not; APP_IMPORT_TIMEOUT is what bounds the import.
    tight = settings.model_copy(
        update={"db_query_timeout": 0.05, "app_import_timeout": import_timeout}
    )
    with TestClient(create_app(tight)) as client:
        caller = Caller(*make_user(client, "alice"))
        response = post_import(client, caller, _chat(3000))
        if import_timeout < 1:
            assert_error(response, 504)
            assert client.get("/v1/conversations", headers=caller.headers).json()["items"] == []
        else:
            assert response.status_code == 201, response.text
            assert response.json()["message_count"] == 3000


def test_mnemo_export_and_import_move_a_users_conversations(
    client: TestClient,
    settings: Settings,
    alice: Caller,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conv = seeded(client, alice, "moved")
    bob = Caller(*make_user(client, "bob"))
    assert settings.database_url is not None
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    everything, one = tmp_path / "all.ndjson", tmp_path / "one.json"
    assert cli.run(["export", "alice", "-o", str(everything)]) == 0
    assert "export: 3 messages" in capsys.readouterr().err
    assert cli.run(["export", "alice", "--conversation", conv["id"], "-o", str(one)]) == 0
    assert json.loads(one.read_bytes()) == json.loads(everything.read_bytes())
    assert cli.run(["import", "bob", str(everything)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["message_count"] == 3 and "import: [" in captured.err
    (copy,) = list_conversations(client, bob)["items"]
    again = client.get(export_url(copy["id"]), headers=bob.headers).json()
    assert plain(again) == plain(json.loads(one.read_bytes()))
    # What goes wrong is said, and nothing is written.
    assert cli.run(["import", "bob", str(everything), "--keep-ids"]) == 1  # alice's ids
    assert "already exists" in capsys.readouterr().err
    assert cli.run(["import", "nobody", str(everything)]) == 1
    assert cli.run(["export", "alice", "--conversation", "x"]) == 1
    assert len(list_conversations(client, bob)["items"]) == 1
