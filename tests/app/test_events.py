"""Routes of event logs: append (201, all or none) and page (?after=&limit=) a task's and a
conversation's log; what message appends and task changes log by themselves; bounds (413,
422); another user's log is 404 and stays as it was."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    append,
    assert_error,
    count_rows,
    make_conversation,
)


def task_of(client: TestClient, caller: Caller) -> Json:
    response = client.post("/v1/tasks", json={"kind": "research"}, headers=caller.headers)
    assert response.status_code == 201, response.text
    task: Json = response.json()
    return task


def post_events(client: TestClient, caller: Caller, url: str, *events: Json) -> Any:
    return client.post(url, json={"events": list(events)}, headers=caller.headers)


def test_a_task_log_is_appended_and_paged(client: TestClient, alice: Caller) -> None:
    task = task_of(client, alice)
    url = f"/v1/tasks/{task['id']}/events"
    written = post_events(
        client,
        alice,
        url,
        {"type": "plan", "payload": {"steps": ["search", "summarize"]}},
        {"type": "step.started", "payload": {"step": 1}},
        {"type": "tool.output"},
    )
    assert written.status_code == 201, written.text
    assert [(e["seq"], e["type"]) for e in written.json()["items"]] == [
        (2, "plan"),
        (3, "step.started"),
        (4, "tool.output"),
    ]
    assert written.json()["items"][2]["payload"] == {}
    page = client.get(url, headers=alice.headers).json()
    assert page["last_seq"] == 4
    assert [e["type"] for e in page["items"]] == ["status", "plan", "step.started", "tool.output"]
    first = page["items"][0]["payload"]
    assert first["status"] == "pending" and first["attempts"] == 0 and first["run_after"]
    later = client.get(url, params={"after": 2, "limit": 1}, headers=alice.headers).json()
    assert [e["seq"] for e in later["items"]] == [3] and later["last_seq"] == 4
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    last = client.get(url, params={"after": 4}, headers=alice.headers).json()
    assert [(e["type"], e["payload"]["status"]) for e in last["items"]] == [("status", "cancelled")]


def test_a_conversation_log_has_its_messages_and_appended_events(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)
    url = f"/v1/conversations/{conversation['id']}/events"
    sent = append(client, alice, conversation["id"], "hello")
    written = post_events(client, alice, url, {"type": "panel", "payload": {"layout": "grid"}})
    assert written.status_code == 201, written.text
    page = client.get(url, headers=alice.headers).json()
    assert [(e["seq"], e["type"]) for e in page["items"]] == [
        (1, "message.created"),
        (2, "panel"),
    ]
    assert page["items"][0]["payload"]["id"] == sent["id"]
    assert page["items"][0]["payload"]["sender_id"] == alice.id


def test_bad_appends_change_nothing(client: TestClient, alice: Caller, settings: Settings) -> None:
    task = task_of(client, alice)
    url = f"/v1/tasks/{task['id']}/events"
    assert_error(post_events(client, alice, url, {"type": "Not A Type"}), 422)
    assert_error(post_events(client, alice, url), 422)
    assert_error(post_events(client, alice, url, *[{"type": "x"}] * 101), 422)
    assert_error(post_events(client, alice, url, {"type": "x", "payload": [1]}), 422)
    assert_error(post_events(client, alice, url, {"type": "x", "extra": 1}), 422)
    huge = {"type": "x", "payload": {"text": "y" * (settings.app_max_event_bytes + 1)}}
    assert_error(post_events(client, alice, url, {"type": "ok"}, huge), 413, "event_too_large")
    headers = {**alice.headers, "content-type": "application/json"}
    response = client.post(url, content=b"\xff\xfe{", headers=headers)
    assert_error(response, 400)
    for params in ({"after": -1}, {"after": "x"}, {"limit": 0}, {"limit": 1001}):
        assert_error(client.get(url, params=params, headers=alice.headers), 422)
    assert count_rows(settings, "SELECT 1 FROM task_events WHERE task_id = %s", task["id"]) == 1


def test_another_users_log_is_not_found(client: TestClient, alice: Caller, bob: Caller) -> None:
    task = task_of(client, alice)
    conversation = make_conversation(client, alice)
    for url in (
        f"/v1/tasks/{task['id']}/events",
        f"/v1/conversations/{conversation['id']}/events",
        f"/v1/tasks/{MISSING_ID}/events",
        f"/v1/conversations/{MISSING_ID}/events",
    ):
        assert_error(client.get(url, headers=bob.headers), 404, "not_found")
        assert_error(post_events(client, bob, url, {"type": "x"}), 404, "not_found")
    page = client.get(f"/v1/tasks/{task['id']}/events", headers=alice.headers).json()
    assert page["last_seq"] == 1
