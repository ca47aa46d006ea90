"""Routes of tasks: create (201), get, list (newest or highest priority first, filters,
keyset), cancel (200, 409
once finished); bounds (422); another user's task is 404 and stays as it was."""

from __future__ import annotations

from typing import Any

import psycopg
from starlette.testclient import TestClient

from dal.settings import Settings
from tests.app.conftest import MISSING_ID, Caller, Json, assert_error, make_conversation


def create(client: TestClient, caller: Caller, **fields: Any) -> Json:
    response = client.post("/v1/tasks", json={"kind": "research", **fields}, headers=caller.headers)
    assert response.status_code == 201, response.text
    task: Json = response.json()
    return task


def sql(settings: Settings, statement: str, *args: Any) -> None:
    """Ad-hoc SQL on the test's database: what a worker would do (the test's own doing)."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(statement, args)  # type: ignore[arg-type]


def test_create_get_list_cancel(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    task = create(
        client,
        alice,
        title="EV market",
        description="find out",
        priority=7,
        input={"q": "ev"},
        conversation_id=conversation["id"],
        thread_id="t-1",
    )
    assert task["status"] == "pending" and task["attempts"] == 0 and task["max_attempts"] == 3
    assert task["input"] == {"q": "ev"} and task["result"] is None and task["user_id"] == alice.id
    got = client.get(f"/v1/tasks/{task['id']}", headers=alice.headers)
    assert got.status_code == 200 and got.json() == task
    other = create(client, alice, kind="summarize")
    listed = client.get("/v1/tasks", headers=alice.headers).json()
    assert [t["id"] for t in listed["items"]] == [other["id"], task["id"]]
    assert listed["next_cursor"] is None
    cancelled = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    again = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert (
        again.status_code == 200
        and again.json()["cancelled_at"] == cancelled.json()["cancelled_at"]
    )
    by_status = client.get("/v1/tasks?status=cancelled", headers=alice.headers).json()
    assert [t["id"] for t in by_status["items"]] == [task["id"]]
    by_kind = client.get("/v1/tasks?kind=summarize&status=", headers=alice.headers).json()
    assert [t["id"] for t in by_kind["items"]] == [other["id"]]
    linked = client.get(
        f"/v1/tasks?conversation_id={conversation['id']}", headers=alice.headers
    ).json()
    assert [t["id"] for t in linked["items"]] == [task["id"]]


def test_list_pages_with_a_cursor(client: TestClient, alice: Caller) -> None:
    made = [create(client, alice, title=str(i))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.get(f"/v1/tasks?limit=2&cursor={cursor}", headers=alice.headers).json()
        seen += [t["id"] for t in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == made[::-1]


def test_list_by_priority_pages_with_a_cursor(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    conversation = make_conversation(client, alice)
    priorities = [1, 7, 1, 7, 7, -2, 1]
    made = [
        create(client, alice, priority=p, kind="a" if i % 2 else "b", title=str(i))
        for i, p in enumerate(priorities)
    ]
    linked = create(client, alice, priority=7, conversation_id=conversation["id"])
    create(client, bob, priority=100)
    everything = [*made, linked]
    expected = [t["id"] for t in sorted(everything, key=lambda t: (t["priority"], t["id"]))][::-1]

    def pages(**params: Any) -> list[str]:
        seen: list[str] = []
        cursor = ""
        while True:
            query = {"order": "priority", "limit": 2, "cursor": cursor, **params}
            response = client.get("/v1/tasks", params=query, headers=alice.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [t["id"] for t in page["items"]]
            if page["next_cursor"] is None:
                return seen
            cursor = page["next_cursor"]

    assert pages() == expected
    assert pages(kind="a") == [i for i in expected if i in {t["id"] for t in made[1::2]}]
    assert pages(status="pending", conversation_id=conversation["id"]) == [linked["id"]]
    assert pages(status="running") == []
    # the default, and an empty order, is newest first
    for params in ({}, {"order": ""}, {"order": "newest"}):
        page = client.get("/v1/tasks", params=params, headers=alice.headers).json()
        assert [t["id"] for t in page["items"]] == [t["id"] for t in everything][::-1]
    # a cursor keeps its order: another order's is 422
    newest = client.get("/v1/tasks?limit=1", headers=alice.headers).json()["next_cursor"]
    refused = client.get(f"/v1/tasks?order=priority&cursor={newest}", headers=alice.headers)
    assert_error(refused, 422, "invalid_input")
    by_priority = client.get("/v1/tasks?limit=1&order=priority", headers=alice.headers).json()
    refused = client.get(f"/v1/tasks?cursor={by_priority['next_cursor']}", headers=alice.headers)
    assert_error(refused, 422, "invalid_input")


def test_a_finished_task_cannot_be_cancelled(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    task = create(client, alice)
    sql(
        settings,
        "UPDATE tasks SET status = 'running', worker = 'w', lease_until = now() + interval '1m'"
        " WHERE id = %s",
        task["id"],
    )
    sql(settings, "UPDATE tasks SET status = 'succeeded', result = '42' WHERE id = %s", task["id"])
    refused = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    body = assert_error(refused, 409, "illegal_transition")
    assert "succeeded -> cancelled" in body["message"]
    after = client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json()
    assert after["status"] == "succeeded" and after["result"] == 42


def test_another_users_task_is_404_and_unchanged(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    task = create(client, alice)
    for method, path in (
        ("GET", f"/v1/tasks/{task['id']}"),
        ("POST", f"/v1/tasks/{task['id']}/cancel"),
        ("GET", f"/v1/tasks/{MISSING_ID}"),
        ("POST", f"/v1/tasks/{MISSING_ID}/cancel"),
    ):
        assert_error(client.request(method, path, headers=bob.headers), 404, "not_found")
    assert client.get("/v1/tasks", headers=bob.headers).json()["items"] == []
    theirs = make_conversation(client, alice)
    refused = client.post(
        "/v1/tasks",
        json={"kind": "k", "conversation_id": theirs["id"]},
        headers=bob.headers,
    )
    assert_error(refused, 404, "not_found")
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json() == task


def test_bad_input_is_422(client: TestClient, alice: Caller) -> None:
    for body in (
        {},
        {"kind": ""},
        {"kind": "a b"},
        {"kind": "k", "priority": 5000},
        {"kind": "k", "max_attempts": 101},
        {"kind": "k", "input": [1]},
        {"kind": "k", "title": "x" * 1001},
        {"kind": "k", "conversation_id": "nope"},
        {"kind": "k", "extra": 1},
    ):
        response = client.post("/v1/tasks", json=body, headers=alice.headers)
        assert response.status_code == 422, (body, response.text)
    whole = create(client, alice, priority=5.0, max_attempts=2.0)  # JSON makes no difference
    assert (whole["priority"], whole["max_attempts"]) == (5, 2)
    assert_error(client.get("/v1/tasks?conversation_id=", headers=alice.headers), 422)
    for query in (
        "status=done",
        "limit=0",
        "limit=201",
        "cursor=!!",
        "conversation_id=x",
        "cursor=abc",
        "order=oldest",
        "order=PRIORITY",
        "order=priority&cursor=!!",
        "order=priority&cursor=abc",
    ):
        response = client.get(f"/v1/tasks?{query}", headers=alice.headers)
        assert_error(response, 422)
    listed = client.get("/v1/tasks", headers=alice.headers).json()["items"]
    assert [t["id"] for t in listed] == [whole["id"]]  # nothing else was created
