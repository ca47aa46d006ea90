"""Routes of workspace snapshots: save (201, Location), list newest first with search and a
conversation or task filter, get (restore), patch, delete (204); bounds (413, 422); another
user's snapshot, a conversation they may not read or a task not theirs, is 404 and nothing
changes."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    assert_error,
    count_rows,
    make_conversation,
)

PANELS: list[Json] = [
    {"id": "sales", "kind": "chart", "query": "EV sales by region", "layout": {"x": 0, "w": 6}},
    {"id": "notes", "kind": "note", "text": "look at Norway"},
]


def save(client: TestClient, caller: Caller, name: str = "EV market", **fields: Any) -> Json:
    response = client.post(
        "/v1/snapshots",
        json={"name": name, "panels": PANELS, **fields},
        headers=caller.headers,
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    assert response.headers["location"] == f"/v1/snapshots/{body['id']}"
    return body


def listed(client: TestClient, caller: Caller, **params: Any) -> Json:
    response = client.get("/v1/snapshots", params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def test_save_then_restore(client: TestClient, alice: Caller) -> None:
    saved = save(client, alice, origin="auto")
    assert saved["panels"] == PANELS
    assert saved["query_text"] == "EV sales by region"
    assert (saved["origin"], saved["panel_count"], saved["conversation_id"]) == ("auto", 2, None)
    response = client.get(f"/v1/snapshots/{saved['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == saved


def test_the_list_is_newest_first_paged_and_searched(client: TestClient, alice: Caller) -> None:
    first = save(client, alice, "Solar", panels=[{"query": "panel prices"}])
    second = save(client, alice, "EV market")
    third = save(client, alice, "Wind")
    page = listed(client, alice, limit=2)
    assert [item["id"] for item in page["items"]] == [third["id"], second["id"]]
    assert "panels" not in page["items"][0]
    rest = listed(client, alice, limit=2, cursor=page["next_cursor"])
    assert [item["id"] for item in rest["items"]] == [first["id"]]
    assert rest["next_cursor"] is None
    assert [i["id"] for i in listed(client, alice, q="ev SALES")["items"]] == [
        third["id"],
        second["id"],
    ]
    assert [i["id"] for i in listed(client, alice, q="PRICES")["items"]] == [first["id"]]
    assert listed(client, alice, q="hydrogen")["items"] == []


def test_a_snapshot_of_a_conversation(client: TestClient, alice: Caller, bob: Caller) -> None:
    conversation = make_conversation(client, alice, title="research")
    linked = save(client, alice, conversation_id=conversation["id"])
    save(client, alice, "unlinked")
    page = listed(client, alice, conversation_id=conversation["id"])
    assert [item["id"] for item in page["items"]] == [linked["id"]]
    # bob may not read alice's conversation: 404, nothing saved
    response = client.post(
        "/v1/snapshots",
        json={"name": "x", "panels": [], "conversation_id": conversation["id"]},
        headers=bob.headers,
    )
    assert_error(response, 404, "not_found")
    assert listed(client, bob)["items"] == []
    for bad in ("nope", ""):
        assert_error(
            client.get("/v1/snapshots", params={"conversation_id": bad}, headers=alice.headers),
            422,
            "invalid_input",
        )


def make_task(client: TestClient, caller: Caller) -> Json:
    response = client.post("/v1/tasks", json={"kind": "research"}, headers=caller.headers)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def test_a_snapshot_of_a_task(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    task = make_task(client, alice)
    linked = save(client, alice, task_id=task["id"])
    assert (linked["task_id"], linked["conversation_id"]) == (task["id"], None)
    save(client, alice, "EV unlinked")
    conversation = make_conversation(client, alice)
    both = save(client, alice, "both", task_id=task["id"], conversation_id=conversation["id"])
    page = listed(client, alice, task_id=task["id"])
    assert [item["id"] for item in page["items"]] == [both["id"], linked["id"]]
    assert page["items"][0]["task_id"] == task["id"]
    paged = listed(client, alice, task_id=task["id"], limit=1)
    rest = listed(client, alice, task_id=task["id"], limit=1, cursor=paged["next_cursor"])
    assert [item["id"] for item in rest["items"]] == [linked["id"]]
    assert [i["id"] for i in listed(client, alice, task_id=task["id"], q="BOTH")["items"]] == [
        both["id"]
    ]
    filtered = listed(client, alice, task_id=task["id"], conversation_id=conversation["id"])
    assert [item["id"] for item in filtered["items"]] == [both["id"]]
    # bob's own snapshot may not link alice's task (404, nothing saved), nor find hers by it
    before = count_rows(settings, "SELECT count(*) FROM workspace_snapshots")
    for task_id in (task["id"], MISSING_ID):
        response = client.post(
            "/v1/snapshots",
            json={"name": "x", "panels": [], "task_id": task_id},
            headers=bob.headers,
        )
        assert_error(response, 404, "not_found")
    assert count_rows(settings, "SELECT count(*) FROM workspace_snapshots") == before
    assert listed(client, bob, task_id=task["id"])["items"] == []
    for bad in ("nope", ""):
        assert_error(
            client.get("/v1/snapshots", params={"task_id": bad}, headers=alice.headers),
            422,
            "invalid_input",
        )


def test_patch_links_and_unlinks_a_task(client: TestClient, alice: Caller, bob: Caller) -> None:
    task = make_task(client, alice)
    saved = save(client, alice)
    one = f"/v1/snapshots/{saved['id']}"
    response = client.patch(one, json={"task_id": task["id"]}, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["task_id"] == task["id"]
    theirs = make_task(client, bob)
    response = client.patch(
        one, json={"name": "taken", "task_id": theirs["id"]}, headers=alice.headers
    )
    assert_error(response, 404, "not_found")
    kept = client.get(one, headers=alice.headers).json()
    assert (kept["name"], kept["task_id"]) == (saved["name"], task["id"])
    response = client.patch(one, json={"task_id": None}, headers=alice.headers)
    assert response.json()["task_id"] is None
    assert_error(client.patch(one, json={"task_id": "nope"}, headers=alice.headers), 422)


def test_patch_renames_replaces_and_unlinks(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    saved = save(client, alice, conversation_id=conversation["id"])
    one = f"/v1/snapshots/{saved['id']}"
    response = client.patch(one, json={"name": "Renamed"}, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["panels"]) == ("Renamed", PANELS)
    response = client.patch(
        one, json={"panels": [{"query": "new"}], "conversation_id": None}, headers=alice.headers
    )
    body = response.json()
    assert (body["name"], body["query_text"], body["conversation_id"]) == ("Renamed", "new", None)
    assert_error(client.patch(one, json={}, headers=alice.headers), 422, "validation_error")
    assert_error(client.patch(one, json={"name": None}, headers=alice.headers), 422)


def test_delete(client: TestClient, alice: Caller) -> None:
    saved = save(client, alice)
    one = f"/v1/snapshots/{saved['id']}"
    response = client.delete(one, headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(one, headers=alice.headers), 404, "not_found")
    assert_error(client.delete(one, headers=alice.headers), 404, "not_found")


def test_another_users_snapshot_is_404_and_unchanged(
    client: TestClient, settings: Settings, alice: Caller, bob: Caller
) -> None:
    saved = save(client, alice)
    one = f"/v1/snapshots/{saved['id']}"
    assert_error(client.get(one, headers=bob.headers), 404, "not_found")
    assert_error(client.patch(one, json={"name": "mine"}, headers=bob.headers), 404)
    assert_error(client.delete(one, headers=bob.headers), 404)
    assert listed(client, bob, q="EV")["items"] == []
    assert client.get(one, headers=alice.headers).json() == saved
    assert_error(client.get(f"/v1/snapshots/{MISSING_ID}", headers=alice.headers), 404)
    assert count_rows(settings, "SELECT count(*) FROM workspace_snapshots") == 1


def test_snapshots_need_a_token(client: TestClient) -> None:
    assert_error(client.get("/v1/snapshots"), 401)
    assert_error(client.post("/v1/snapshots", json={"name": "x", "panels": []}), 401)


def test_bounds(client: TestClient, settings: Settings, alice: Caller) -> None:
    small = settings.model_copy(update={"app_max_snapshot_bytes": 100})
    with TestClient(create_app(small)) as limited:
        big = {"name": "big", "panels": [{"query": "x" * 200}]}
        response = limited.post("/v1/snapshots", json=big, headers=alice.headers)
        error = assert_error(response, 413, "snapshot_too_large")
        assert "APP_MAX_SNAPSHOT_BYTES" in error["message"]
    assert count_rows(settings, "SELECT count(*) FROM workspace_snapshots") == 0
    for body in (
        {"name": "", "panels": []},
        {"name": "x" * 201, "panels": []},
        {"name": "x", "panels": {"not": "a list"}},
        {"name": "x", "panels": [1]},
        {"name": "x", "panels": [], "origin": "other"},
        {"panels": []},
    ):
        assert_error(client.post("/v1/snapshots", json=body, headers=alice.headers), 422)
    for params in ({"limit": 0}, {"limit": 201}, {"cursor": "!"}, {"q": "x" * 1001}):
        assert_error(client.get("/v1/snapshots", params=params, headers=alice.headers), 422)
